"""An OpenTelemetry server span per sampled request, named and attributed by the HTTP
conventions."""

from contextvars import Token
from typing import Any, Final

from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue
from starlette.types import Scope

from cme_adapters.telemetry.tracing import CURRENT_SPAN, HTTP_SCOPE, SAMPLED, OpenSpan, Traces
from cme_entrypoints.http.middleware import UNMATCHED_PATH
from cme_entrypoints.trace_context import RequestContext

_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
_SERVER_ERROR: Final = Status(StatusCode.ERROR)


class ServerSpans:
    """Used by ObservabilityMiddleware only when tracing is configured.

    Sampling is decided first, on the ids the request's log lines carry. For the standard
    samplers that is one comparison (telemetry.sampling.RatioRule); a sampler of any other kind is
    asked. A dropped request has no span at all, so its database calls make none either.
    """

    def __init__(self, traces: Traces) -> None:
        self._traces = traces
        self._rule = traces.rule

    def start(self, scope: Scope, context: RequestContext) -> tuple[Any, RequestContext]:
        rule = self._rule
        if rule is not None:
            follows = context.sampled if context.parent_span_id is not None else None
            sampled = rule.sampled(context.trace_id, follows)
            trace_state = None
            attributes = _request_attributes(scope) if sampled else {}
        else:
            decided = self._traces.ask(
                _parent(context),
                int(context.trace_id, 16),
                scope["method"],
                SpanKind.SERVER,
                _request_attributes(scope),
            )
            sampled = decided is not None
            attributes, trace_state = decided or ({}, None)
        if not sampled:
            # uvicorn starts a pipelined request's task from inside the previous request,
            # whose span the new task's context then holds: not this request's parent.
            if CURRENT_SPAN.get() is not None:
                CURRENT_SPAN.set(None)
            return None, context._replace(sampled=False) if context.sampled else context
        own = SpanContext(
            int(context.trace_id, 16), int(context.span_id, 16), False, SAMPLED, trace_state
        )
        span = OpenSpan(
            scope["method"], SpanKind.SERVER, own, _parent(context), attributes, HTTP_SCOPE
        )
        token = CURRENT_SPAN.set(span)
        return (span, token), context if context.sampled else context._replace(sampled=True)

    def finish(self, handle: Any, method: str, route: str, status: int) -> None:
        span: OpenSpan
        token: Token[OpenSpan | None]
        span, token = handle
        if route != UNMATCHED_PATH:
            span.name = f"{method} {route}"
            span.attributes["http.route"] = route
        span.attributes["http.response.status_code"] = status
        if status >= 500:
            span.status = _SERVER_ERROR
        self._traces.end(span)
        CURRENT_SPAN.reset(token)


def _request_attributes(scope: Scope) -> dict[str, AttributeValue]:
    return {
        "http.request.method": scope["method"],
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }


def _parent(context: RequestContext) -> SpanContext | None:
    """The caller's span, from traceparent or X-Cloud-Trace-Context."""
    if context.parent_span_id is None:
        return None
    flags = SAMPLED if context.sampled else _NOT_SAMPLED
    return SpanContext(int(context.trace_id, 16), int(context.parent_span_id, 16), True, flags)
