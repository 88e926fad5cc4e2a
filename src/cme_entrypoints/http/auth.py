"""Turning request credentials into a Principal, or a 401 that says how to authenticate."""

from typing import Protocol

from starlette.requests import Request

from cme_domain.principal import Principal
from cme_entrypoints.http.problems import Problem

CHALLENGE = 'ApiKey header="X-API-Key"'


class ApiKeyCheck(Protocol):
    @property
    def enabled(self) -> bool: ...

    def authenticate(self, api_key: str) -> Principal | None: ...


class RequestAuthenticator:
    def __init__(self, api_keys: ApiKeyCheck) -> None:
        self._api_keys = api_keys

    def __call__(self, request: Request) -> Principal:
        api_key = request.headers.get("x-api-key")
        if api_key is None:
            raise _unauthorized("send an API key in the X-API-Key header")
        if not self._api_keys.enabled:
            raise _unauthorized("writes are disabled: the service has no API key configured")
        principal = self._api_keys.authenticate(api_key)
        if principal is None:
            raise _unauthorized("the API key is not valid")
        return principal


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, slug="unauthorized", headers={"WWW-Authenticate": CHALLENGE})
