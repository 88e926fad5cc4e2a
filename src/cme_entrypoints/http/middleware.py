"""One plain ASGI middleware for request ids, traces, metrics and the access log."""

import time
from contextvars import Token
from typing import Any, Final, Protocol

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cme_entrypoints import logs, trace_context
from cme_entrypoints.http.auth import PRINCIPAL_SUBJECT
from cme_entrypoints.http.long_poll import LONG_POLL
from cme_entrypoints.http.security import add_security_headers
from cme_entrypoints.trace_context import REQUEST_ID_HEADER, RequestContext

UNMATCHED_PATH: Final = "unmatched"
# Lifespan state key under which the HTTP protocol finds report_rejected (see protocol.py).
REJECTED_REQUEST: Final = "cme.rejected_request"


class RequestMetrics(Protocol):
    def request_started(self) -> None: ...

    def request_finished(
        self, method: str, path: str, status: int, seconds: float, long_poll: bool
    ) -> None: ...


class SpanRecorder(Protocol):
    def start(self, scope: Scope, context: RequestContext) -> tuple[Any, RequestContext]:
        """The span to finish (None: nothing to finish) and the ids to log."""
        ...

    def finish(self, span: Any, method: str, route: str, status: int) -> None: ...


class ObservabilityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: RequestMetrics,
        access_log: logs.AccessLog,
        record: bool = True,
        routes: tuple[BaseRoute, ...] = (),
        spans: SpanRecorder | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        # Off only to measure what metrics and the access log cost (REQUEST_TELEMETRY=false).
        self.record = record
        self.routes = routes
        self.spans = spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        context = trace_context.from_scope(scope)
        span = None
        if self.spans is not None:
            span, context = self.spans.start(scope, context)
        scope.setdefault("state", {})["request_id"] = context.request_id
        request_id = context.request_id.encode()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
                add_security_headers(scope, status, headers)
                message["headers"] = headers
            await send(message)

        if self.record:
            self.metrics.request_started()
        token: Token[RequestContext | None] | None = logs.request_context.set(context)
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # Left set: the error escaped even ServerErrorMiddleware, which has logged it and
            # answered 500 by now. Each request runs in a task of its own, so the value ends
            # with the request.
            token = None
            raise
        finally:
            route = self._route(scope, status)
            if span is not None and self.spans is not None:
                self.spans.finish(span, scope["method"], route, status)
            if self.record:
                elapsed = time.perf_counter() - started
                long_poll = LONG_POLL in scope["state"]
                self.metrics.request_finished(scope["method"], route, status, elapsed, long_poll)
                self.access_log.write(
                    scope,
                    route,
                    status,
                    elapsed,
                    context,
                    scope["state"].get(PRINCIPAL_SUBJECT),
                )
            if token is not None:
                logs.request_context.reset(token)

    def _route(self, scope: Scope, status: int) -> str:
        """The route template, also for a request refused before routing (401, 414)."""
        route = scope.get("route")
        if route is not None:
            return str(getattr(route, "path_format", UNMATCHED_PATH))
        if status != 404:
            for candidate in self.routes:
                if candidate.matches(scope)[0] is not Match.NONE:
                    return str(getattr(candidate, "path_format", UNMATCHED_PATH))
        return UNMATCHED_PATH


def report_rejected(
    metrics: RequestMetrics, access_log: logs.AccessLog, method: str, path: str, status: int
) -> RequestContext:
    """Count and log a request the HTTP server refused before the app saw it (400, 431)."""
    context = trace_context.from_scope({"headers": ()})
    metrics.request_started()
    metrics.request_finished(method, UNMATCHED_PATH, status, 0.0, False)
    access_log.write({"method": method, "path": path}, UNMATCHED_PATH, status, 0.0, context, None)
    return context
