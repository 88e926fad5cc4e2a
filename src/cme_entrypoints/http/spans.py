"""An OpenTelemetry server span per request, named and attributed by the HTTP conventions."""

from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from starlette.types import Scope

from cme_adapters.tracing import ROOT_TRACE_ID
from cme_entrypoints.http.middleware import UNMATCHED_PATH
from cme_entrypoints.trace_context import RequestContext

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_NO_PARENT: Final = otel_context.Context()
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)


class ServerSpans:
    """Used by ObservabilityMiddleware only when tracing is configured.

    Sampling is decided first, on the ids the request's log lines carry. Only a request that is
    sampled goes through the SDK (span, attributes, context, export). For the standard samplers
    a dropped request costs one comparison and has no span at all, so its database calls make
    none either; a sampler of any other kind is asked, and a request it drops gets a
    non-recording span with those ids.
    """

    def __init__(self, provider: "TracerProvider") -> None:
        from cme_adapters.trace_sampling import ratio_rule

        self._tracer = provider.get_tracer("cme.http")
        self._sampler = provider.sampler
        self._rule = ratio_rule(provider.sampler)

    def start(self, scope: Scope, context: RequestContext) -> tuple[Any, RequestContext]:
        rule = self._rule
        if rule is not None:
            parent_sampled = context.sampled if context.parent_span_id is not None else None
            if not rule.sampled(context.trace_id, parent_sampled):
                return None, context._replace(sampled=False) if context.sampled else context
        trace_id = int(context.trace_id, 16)
        parent = _NO_PARENT
        if context.parent_span_id is not None:
            remote = SpanContext(
                trace_id,
                int(context.parent_span_id, 16),
                is_remote=True,
                trace_flags=_SAMPLED if context.sampled else _NOT_SAMPLED,
            )
            parent = trace.set_span_in_context(NonRecordingSpan(remote), parent)
        if rule is None and not self._sampled(parent, trace_id, scope["method"]):
            own = SpanContext(trace_id, int(context.span_id, 16), False, _NOT_SAMPLED)
            span: Span = NonRecordingSpan(own)
        else:
            span = self._recording_span(scope, parent, trace_id)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        ids = span.get_span_context()
        # The log lines name the span the SDK made (its own span id) and its decision.
        logged = context._replace(span_id=f"{ids.span_id:016x}", sampled=ids.trace_flags.sampled)
        return (span, token), logged

    def _sampled(self, parent: otel_context.Context, trace_id: int, name: str) -> bool:
        """A sampler of a kind the rule does not know is asked first, on the logged ids."""
        decision = self._sampler.should_sample(parent, trace_id, name, SpanKind.SERVER).decision
        return bool(decision.is_recording())  # type: ignore[no-untyped-call]  # the SDK's

    def _recording_span(self, scope: Scope, parent: otel_context.Context, trace_id: int) -> Span:
        # The SDK asks the sampler itself, with the attributes: on the same trace id the
        # standard ones agree with the rule, and a sampler that reads attributes may still
        # drop the span, which then comes back as a non-recording one.
        root = ROOT_TRACE_ID.set(trace_id)
        try:
            return self._tracer.start_span(
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
        finally:
            ROOT_TRACE_ID.reset(root)

    def finish(self, handle: Any, method: str, route: str, status: int) -> None:
        span, token = handle
        if span.is_recording():
            if route != UNMATCHED_PATH:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        otel_context.detach(token)
