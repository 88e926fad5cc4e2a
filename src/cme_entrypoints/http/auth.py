"""Who may do what: request credentials (X-API-Key or a bearer JWT) to a Principal, or a 401."""

from typing import Final, Protocol

from starlette.requests import Request
from starlette.types import Scope

from cme_adapters.auth import CredentialsRejected
from cme_domain.principal import READ_SCOPE, WRITE_SCOPE, Principal
from cme_entrypoints.http.problems import Problem
from cme_entrypoints.http.routing import in_api, reads_need_write_scope

# Keys in scope["state"]: the Principal for the routes, its subject for the access log.
PRINCIPAL: Final = "principal"
PRINCIPAL_SUBJECT: Final = "principal_subject"
WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS: Final = frozenset({"GET", "HEAD"})
API_KEY_CHALLENGE: Final = 'ApiKey header="X-API-Key"'
BEARER_CHALLENGE: Final = 'Bearer realm="cme"'


def caller_key(scope: Scope) -> str:
    """Who a limit counts against: the subject the guard authenticated, else the address."""
    subject = scope.get("state", {}).get(PRINCIPAL_SUBJECT)
    if subject is not None:
        return f"subject:{subject}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


class ApiKeyCheck(Protocol):
    """The API-key port: a Principal for a known key, None otherwise."""

    @property
    def enabled(self) -> bool: ...

    def authenticate(self, api_key: str) -> Principal | None: ...


class TokenCheck(Protocol):
    """The bearer-token port: a Principal, or CredentialsRejected saying why not."""

    async def start(self) -> None: ...

    async def authenticate(self, token: str) -> Principal: ...


class RequestAuthenticator:
    def __init__(
        self,
        api_keys: ApiKeyCheck | None = None,
        tokens: TokenCheck | None = None,
        require_read_scope: bool = False,
    ) -> None:
        self._api_keys = api_keys if api_keys is not None and api_keys.enabled else None
        self._tokens = tokens
        self._read_scope = READ_SCOPE if require_read_scope else None
        schemes = []
        if self._api_keys is not None or tokens is None:
            schemes.append(("an API key in the X-API-Key header", API_KEY_CHALLENGE))
        if tokens is not None:
            schemes.append(("a JWT in an Authorization: Bearer header", BEARER_CHALLENGE))
        self._hint = " or ".join(hint for hint, _ in schemes)
        self._challenge = ", ".join(challenge for _, challenge in schemes)

    @property
    def enabled(self) -> bool:
        return self._api_keys is not None or self._tokens is not None

    async def start(self) -> None:
        if self._tokens is not None:
            await self._tokens.start()

    def required_scope(self, method: str, path: str) -> str | None:
        """The scope a request needs, None when it is public: only the API's resources are
        protected (routing.API_ROOTS)."""
        if not in_api(path):
            return None
        if method in WRITE_METHODS or reads_need_write_scope(path):
            return WRITE_SCOPE
        return self._read_scope if method in READ_METHODS else None

    async def authenticate(self, scope: Scope) -> Principal:
        """The caller's Principal, also kept in the scope's state; a 401 Problem otherwise."""
        api_key = authorization = None
        for name, value in scope["headers"]:
            if name == b"x-api-key" and api_key is None:
                api_key = value.decode("latin-1")
            elif name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
        if api_key is not None and authorization is not None:
            raise self._unauthorized("send one credential, not both X-API-Key and Authorization")
        if authorization is not None:
            principal = await self._bearer(authorization)
        elif api_key is not None:
            principal = self._api_key(api_key)
        else:
            raise self._unauthorized(f"send {self._hint}")
        state = scope.setdefault("state", {})
        state[PRINCIPAL] = principal
        state[PRINCIPAL_SUBJECT] = principal.subject
        return principal

    def __call__(self, request: Request) -> Principal:
        """The Principal the guard middleware established; without one, fail closed."""
        principal = request.scope.get("state", {}).get(PRINCIPAL)
        if not isinstance(principal, Principal):
            raise self._unauthorized(f"send {self._hint}")
        return principal

    def _api_key(self, api_key: str) -> Principal:
        if self._api_keys is None:
            raise self._unauthorized("API keys are not accepted: no key is configured")
        principal = self._api_keys.authenticate(api_key)
        if principal is None:
            raise self._unauthorized("the API key is not valid")
        return principal

    async def _bearer(self, authorization: str) -> Principal:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized(f"send {self._hint}")
        if self._tokens is None:
            raise self._unauthorized("bearer tokens are not accepted: JWT is not configured")
        try:
            return await self._tokens.authenticate(token.strip())
        except CredentialsRejected as rejected:
            challenge = f'{self._challenge}, error="invalid_token"'
            raise _problem(str(rejected), challenge) from None

    def _unauthorized(self, detail: str) -> Problem:
        return _problem(detail, self._challenge)


def _problem(detail: str, challenge: str) -> Problem:
    return Problem(401, detail, slug="unauthorized", headers={"WWW-Authenticate": challenge})
