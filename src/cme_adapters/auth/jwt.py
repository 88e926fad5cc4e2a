"""JWT bearer tokens checked with PyJWT: pinned algorithm, signature, expiry, issuer, audience."""

from typing import Any, Final, Protocol

import jwt
from jwt import PyJWK, PyJWKClient

from cme_adapters.auth import CredentialsRejected, keys
from cme_adapters.auth.jwt_config import JwtSettings
from cme_domain.principal import Principal

SUBJECT_PREFIX: Final = "jwt:"
# The idempotency owner column holds 200 characters, prefix included.
SUBJECT_MAX: Final = 200 - len(SUBJECT_PREFIX)
JWKS_TIMEOUT_SECONDS: Final = 5.0


class KeySource(Protocol):
    single: PyJWK | None  # the key for every token, when there is only one

    async def start(self) -> None: ...

    async def key_for(self, kid: str | None) -> PyJWK | None: ...


def key_source(settings: JwtSettings) -> KeySource:
    """The settings' keys, loaded once; ValueError says what is wrong with static material."""
    if settings.secret:
        return keys.StaticKey(keys.secret_key(settings.secret))
    if settings.public_key_pem:
        return keys.StaticKey(keys.pem_key(settings.public_key_pem, settings.algorithms))
    if settings.jwks_document is not None:
        return keys.JwkSetKeys(keys.jwk_set(settings.jwks_document, settings.algorithms))
    # The client's own cache is off: ours answers lookups on the event loop without I/O.
    client = PyJWKClient(settings.jwks_url, cache_jwk_set=False, timeout=JWKS_TIMEOUT_SECONDS)
    return keys.FetchedJwkSet(client.fetch_data, settings.algorithms)


_REASONS: Final[list[tuple[type[Exception], str]]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidIssuerError, "the token's issuer is not accepted"),
    (jwt.InvalidAudienceError, "the token's audience is not accepted"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
]


class JwtAuthenticator:
    def __init__(self, settings: JwtSettings, source: KeySource | None = None) -> None:
        self._keys = key_source(settings) if source is None else source
        self._algorithms = list(settings.algorithms)
        self._issuer = settings.issuer
        self._audience = list(settings.audience) or None
        self._leeway = settings.leeway_seconds
        required = ["exp", "sub"] + ["iss"] * bool(settings.issuer) + ["aud"] * bool(self._audience)
        self._decoder = jwt.PyJWT({"require": required, "enforce_minimum_key_length": True})

    async def start(self) -> None:
        await self._keys.start()

    async def authenticate(self, token: str) -> Principal:
        key = self._keys.single or await self._keys.key_for(_kid(token))
        if key is None:
            raise CredentialsRejected("the token's signing key is not known")
        try:
            claims = self._decoder.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
            )
        except jwt.InvalidTokenError as error:
            reason = next((r for kind, r in _REASONS if isinstance(error, kind)), None)
            raise CredentialsRejected(reason or "the token is not valid") from None
        # Token subjects live in their own namespace, as API keys do in "api-key:": a token
        # whose sub is "api-key:default" must not share that key's idempotency records.
        return Principal(SUBJECT_PREFIX + _subject(claims), _scopes(claims))


def _kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        raise CredentialsRejected("the token is not valid") from None
    return kid if isinstance(kid, str) else None


def _subject(claims: dict[str, Any]) -> str:
    subject = claims["sub"]
    if not isinstance(subject, str) or not 0 < len(subject) <= SUBJECT_MAX:
        raise CredentialsRejected(f"the token's sub must be 1-{SUBJECT_MAX} characters")
    if not subject.isprintable():
        raise CredentialsRejected("the token's sub must be printable")
    return subject


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """OAuth's space-separated `scope`, and `scp` as a list or a string (Azure AD, Okta)."""
    found: set[str] = set()
    for value in (claims.get("scope"), claims.get("scp")):
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(s for s in value if isinstance(s, str))
    return frozenset(found)
