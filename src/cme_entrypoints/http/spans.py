"""An OpenTelemetry server span per sampled request, named and attributed by the HTTP
conventions."""

from contextvars import Token
from typing import Any, Final

from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from starlette.types import Scope

from cme_adapters.telemetry.tracing import CURRENT_SPAN, HTTP_SCOPE, SAMPLED, OpenSpan, Traces
from cme_entrypoints.http.middleware import UNMATCHED_PATH
from cme_entrypoints.trace_context import RequestContext

_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
_SERVER_ERROR: Final = Status(StatusCode.ERROR)
_W3C: Final = TraceContextTextMapPropagator()
_W3C_HEADERS: Final = (b"traceparent", b"tracestate")


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
        parent = None
        if rule is not None:
            follows = context.sampled if context.parent_span_id is not None else None
            sampled = rule.sampled(context.trace_id, follows)
            trace_state = None
            attributes = {}
            if sampled:
                # As the standard samplers do: the span carries on its caller's trace state.
                parent = _parent(scope, context)
                trace_state = None if parent is None else parent.trace_state
                attributes = _request_attributes(scope)
        else:
            parent = _parent(scope, context)
            decided = self._traces.ask(
                parent,
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
        span = OpenSpan(scope["method"], SpanKind.SERVER, own, parent, attributes, HTTP_SCOPE)
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


def _parent(scope: Scope, context: RequestContext) -> SpanContext | None:
    """The caller's span: from traceparent and tracestate through the standard W3C propagator,
    or from X-Cloud-Trace-Context, which carries no trace state."""
    if context.parent_span_id is None:
        return None
    carrier: dict[str, list[str]] = {}
    for key, value in scope["headers"]:
        if key in _W3C_HEADERS:
            carrier.setdefault(key.decode(), []).append(value.decode("latin-1"))
    if "traceparent" in carrier:
        found = get_current_span(_W3C.extract(carrier)).get_span_context()
        # The log lines' ids came from the same header: the propagator agrees, or is stricter.
        if found.trace_id == int(context.trace_id, 16) and found.span_id == int(
            context.parent_span_id, 16
        ):
            return found
    flags = SAMPLED if context.sampled else _NOT_SAMPLED
    return SpanContext(int(context.trace_id, 16), int(context.parent_span_id, 16), True, flags)
