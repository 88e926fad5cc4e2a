"""Plain ASGI hardening: security headers on every response, and a guard in front of the routes."""

import hashlib
import hmac
from typing import Final

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cme_domain.principal import MissingScope
from cme_entrypoints.http import errors
from cme_entrypoints.http.auth import PRINCIPAL_SUBJECT, RequestAuthenticator
from cme_entrypoints.http.headers import API_HEADERS, DOCS_HEADERS, NO_STORE
from cme_entrypoints.http.problems import Problem

MAX_QUERY_BYTES: Final = 2048
METRICS_PATH: Final = "/metrics"
DOCS_PATH: Final = "/docs"


def add_security_headers(scope: Scope, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    """The security headers every response gets; error and authenticated responses also get
    Cache-Control: no-store, unless they already say how to cache.

    Called by the observability middleware, the outermost layer, on each response start: one
    send wrapper for the request id and these, instead of one each.
    """
    path = route_path(scope)
    docs = path == DOCS_PATH or path.startswith("/docs/")
    headers.extend(DOCS_HEADERS if docs else API_HEADERS)
    private = PRINCIPAL_SUBJECT in scope.get("state", ())
    if (status >= 400 or private) and not _has(headers, b"cache-control"):
        headers.append(NO_STORE)


class RequestGuard:
    """Answers before any route runs: 414 for an over-long query, 401 for /metrics without its
    token, and 401/403 for a /products request without the credentials and scope it needs."""

    def __init__(self, app: ASGIApp, authenticator: RequestAuthenticator, metrics_token: str):
        self.app = app
        self._auth = authenticator
        self._metrics = hashlib.sha256(metrics_token.encode()).digest() if metrics_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._check(scope)
        except Problem as problem:
            response = await errors.problem_handler(Request(scope), problem)
        except MissingScope as missing:
            response = await errors.domain_handler(Request(scope), missing)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _check(self, scope: Scope) -> None:
        if len(scope["query_string"]) > MAX_QUERY_BYTES:
            raise Problem(414, f"the query is longer than {MAX_QUERY_BYTES} bytes", slug="too-long")
        path = route_path(scope)
        if path == METRICS_PATH and self._metrics is not None:
            self._check_metrics_token(scope, self._metrics)
            return
        needed = self._auth.required_scope(scope["method"], path)
        if needed is not None:
            principal = await self._auth.authenticate(scope)
            principal.require(needed)

    def _check_metrics_token(self, scope: Scope, expected: bytes) -> None:
        authorization = _header(scope, b"authorization") or b""
        scheme, _, token = authorization.partition(b" ")
        offered = hashlib.sha256(token.strip()).digest()
        # Compare digests: equal lengths keep the comparison's time independent of the token.
        if not (hmac.compare_digest(offered, expected) and scheme.lower() == b"bearer"):
            raise Problem(
                401,
                "send the metrics token in an Authorization: Bearer header",
                slug="unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        scope.setdefault("state", {})[PRINCIPAL_SUBJECT] = "metrics-scraper"


def cors(origins: tuple[str, ...]) -> list[Middleware]:
    """CORS for the listed origins only; none listed, no CORS middleware at all."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=[
                "ETag",
                "Location",
                "Retry-After",
                "Idempotent-Replayed",
                "X-Request-ID",
                "WWW-Authenticate",
            ],
            max_age=600,
        )
    ]


def route_path(scope: Scope) -> str:
    """The path the router matches: without the root_path a proxy may have put in front."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _has(headers: list[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(key.lower() == name for key, _ in headers)
