"""An OpenTelemetry server span per request, named and attributed by the HTTP conventions."""

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
)
from starlette.types import Scope

from cme_entrypoints.http.middleware import UNMATCHED_PATH
from cme_entrypoints.trace_context import RequestContext


class ServerSpans:
    """Used by ObservabilityMiddleware only when tracing is configured."""

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("cme.http")

    def start(self, scope: Scope, context: RequestContext) -> tuple[Any, RequestContext]:
        parent = otel_context.Context()
        if context.parent_span_id is not None:
            remote = SpanContext(
                int(context.trace_id, 16),
                int(context.parent_span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if context.sampled else 0),
            )
            parent = trace.set_span_in_context(NonRecordingSpan(remote))
        span = self._tracer.start_span(
            scope["method"],
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": scope["method"],
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
                "network.protocol.version": scope.get("http_version", "1.1"),
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        ids = span.get_span_context()
        # The log lines name the span the SDK made (a new trace id when there was no parent).
        context = context._replace(
            trace_id=f"{ids.trace_id:032x}",
            span_id=f"{ids.span_id:016x}",
            sampled=ids.trace_flags.sampled,
        )
        return (span, token), context

    def finish(self, handle: Any, method: str, route: str, status: int) -> None:
        span, token = handle
        if route != UNMATCHED_PATH:
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        otel_context.detach(token)
