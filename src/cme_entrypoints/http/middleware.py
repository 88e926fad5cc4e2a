"""One plain ASGI middleware for request ids, metrics and the access log (no per-request task)."""

import os
import re
import time
from typing import Final, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cme_entrypoints import logs
from cme_entrypoints.http.auth import PRINCIPAL_SUBJECT

REQUEST_ID_HEADER: Final = b"x-request-id"
_VALID_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
UNMATCHED_PATH: Final = "unmatched"


class RequestMetrics(Protocol):
    def request_started(self) -> None: ...

    def request_finished(self, method: str, path: str, status: int, seconds: float) -> None: ...


class ObservabilityMiddleware:
    def __init__(
        self, app: ASGIApp, metrics: RequestMetrics, access_log: logs.AccessLog, record: bool = True
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        # Off only to measure what metrics and the access log cost (REQUEST_TELEMETRY=false).
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        if self.record:
            self.metrics.request_started()
        token = logs.request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)
            if self.record:
                self._record(scope, request_id, status, time.perf_counter() - started)

    def _record(self, scope: Scope, request_id: str, status: int, elapsed: float) -> None:
        path = getattr(scope.get("route"), "path", UNMATCHED_PATH)
        self.metrics.request_finished(scope["method"], path, status, elapsed)
        if self.access_log.enabled:
            self.access_log.write(
                scope["method"],
                scope["path"],
                path,
                status,
                elapsed,
                request_id,
                scope["state"].get(PRINCIPAL_SUBJECT),
                _header(scope, b"x-cloud-trace-context"),
            )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is safe to echo and log; a fresh one otherwise."""
    for key, value in scope["headers"]:
        if key == REQUEST_ID_HEADER and _VALID_REQUEST_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return os.urandom(16).hex()
