"""Request metrics (prometheus_client, the service's names) and the service's security headers.

Two middlewares, both as FastAPI's documentation teaches them: by default a pure ASGI class
added with `app.add_middleware` (the Advanced Middleware page; Starlette recommends it over
BaseHTTPMiddleware), or with FASTAPI_REF_MIDDLEWARE=http the tutorial's `@app.middleware("http")`,
which runs each request in a task of its own and costs far more CPU per request.
"""

import os
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The service's names, labels and buckets, so one dashboard reads both.
REQUESTS = Counter("http_requests", "HTTP requests served", ["method", "path", "status"])
LATENCY = Histogram(
    "request_latency_seconds",
    "Time from request start to response end, in seconds",
    ["method", "path", "status"],
    buckets=(0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2),
)
# The service's static security headers: the same bytes on the wire for the same body.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


def observe(method: str, scope: Scope, status: int, started: float) -> None:
    path = getattr(scope.get("route"), "path", "unmatched")  # the route template
    REQUESTS.labels(method, path, str(status)).inc()
    LATENCY.labels(method, path, str(status)).observe(time.perf_counter() - started)


class PrometheusMiddleware:
    """Counts and times every HTTP request, and adds the security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *_RAW_HEADERS]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            observe(scope["method"], scope, status, started)


async def observe_http(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    observe(request.method, request.scope, response.status_code, started)
    response.headers.update(SECURITY_HEADERS)
    return response


async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> str:
    """Add the middleware FASTAPI_REF_MIDDLEWARE names (asgi, the default, or http) and the
    /metrics route; return which middleware it is."""
    kind = os.environ.get("FASTAPI_REF_MIDDLEWARE") or "asgi"
    if kind == "http":
        app.middleware("http")(observe_http)
    elif kind == "asgi":
        app.add_middleware(PrometheusMiddleware)
    else:
        raise SystemExit(f"FASTAPI_REF_MIDDLEWARE must be asgi or http, not {kind!r}")
    app.add_api_route("/metrics", metrics, methods=["GET"])
    return kind
