"""OpenTelemetry traces, set up from the standard OTEL_* variables: spans recorded without the
SDK's Span (a request's server span, http/spans.py; a database call's, database_spans.py)."""

import os
import time
import traceback
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import Event, SpanLimits, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

    from cme_adapters.telemetry.sampling import RatioRule

GOOGLE_OTLP_HOST: Final = "telemetry.googleapis.com"
_CLOUD_PLATFORM: Final = "https://www.googleapis.com/auth/cloud-platform"
SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
HTTP_SCOPE: Final = InstrumentationScope("cme.http")
_UNSET: Final = Status(StatusCode.UNSET)
_NO_PARENT: Final = Context()
# Attribute values past these lengths are cut, when OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT and
# OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT leave them unlimited (OpenTelemetry's default): a client
# chooses the path a span records, and 2048 queued spans with 15 KB paths held 100 MiB.
SPAN_ATTRIBUTE_LENGTH: Final = 1024
EVENT_ATTRIBUTE_LENGTH: Final = 8192  # an exception's stack trace


class OpenSpan:
    """A sampled span not yet ended: what its ReadableSpan will hold."""

    __slots__ = (
        "attributes",
        "context",
        "ended",
        "events",
        "kind",
        "name",
        "parent",
        "scope",
        "start_time",
        "status",
    )

    def __init__(
        self,
        name: str,
        kind: SpanKind,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, AttributeValue],
        scope: InstrumentationScope,
    ) -> None:
        self.name = name
        self.kind = kind
        self.context = context
        self.parent = parent
        self.attributes = attributes
        self.scope = scope
        self.status = _UNSET
        self.events: tuple[Event, ...] = ()
        self.start_time = time.time_ns()
        # A task the request started may outlive it with this span in its context.
        self.ended = False

    def record_exception(self, exc: BaseException) -> None:
        """As the SDK's Span.record_exception: an "exception" event and an error status."""
        from opentelemetry.sdk.trace import Event

        module, name = type(exc).__module__, type(exc).__qualname__
        attributes = {
            "exception.type": f"{module}.{name}" if module and module != "builtins" else name,
            "exception.message": str(exc),
            "exception.stacktrace": "".join(traceback.format_exception(exc)),
            "exception.escaped": "False",
        }
        self.events += (Event("exception", attributes),)
        self.status = Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")


class Traces:
    """The SDK as configured by OTEL_* (sampler, resource, the span processor and its exporter),
    with spans recorded outside its Tracer.

    Through the SDK's Tracer, a request's server span and one statement's span took 88 us of
    CPU against 14 us here, in the same minute (bench/tracing_cost.py parts): its spans take a
    lock and validate for every attribute set after the start, and it asks the sampler again
    and makes the span current. An OpenSpan is a slotted record; ending it hands the processor
    the ReadableSpan the SDK's own span would have become, its attributes and events bounded
    by the span limits as the SDK's span bounds them. What is not done:
    SpanProcessor.on_start, which the batching processor leaves empty.
    """

    def __init__(
        self,
        provider: "TracerProvider",
        processor: "SpanProcessor",
        limits: "SpanLimits | None" = None,
        rule: "RatioRule | None" = None,
    ) -> None:
        # The SDK's span module is imported only once tracing is on, as the exporter is.
        from opentelemetry.sdk.trace import ReadableSpan

        self._readable = ReadableSpan
        self.limits = span_limits() if limits is None else limits
        provider.add_span_processor(processor)  # so that shutdown flushes it
        self._provider = provider
        self._processor = processor
        self._resource = provider.resource
        self.sampler: Sampler = provider.sampler
        # The provider's sampler's rule (sampling.configured); None: the sampler is asked.
        self.rule = rule

    def ask(
        self,
        parent: SpanContext | None,
        trace_id: int,
        name: str,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
    ) -> tuple[dict[str, AttributeValue], TraceState | None] | None:
        """As the SDK's Tracer asks a sampler: None when the span is not sampled (a recorded
        but unsampled span would reach no exporter); else the span's attributes, which are the
        sampler's, and its trace state."""
        context = _NO_PARENT
        if parent is not None:
            context = set_span_in_context(NonRecordingSpan(parent), _NO_PARENT)
        result = self.sampler.should_sample(context, trace_id, name, kind, attributes)
        if not result.decision.is_sampled():  # type: ignore[no-untyped-call]  # the SDK's
            return None
        return dict(result.attributes or {}), result.trace_state

    def end(self, span: OpenSpan) -> None:
        span.ended = True
        limits = self.limits
        # BoundedAttributes(count, attributes, immutable, value length), as the SDK's span.
        attributes = BoundedAttributes(
            limits.max_span_attributes, span.attributes, True, limits.max_span_attribute_length
        )
        self._processor.on_end(
            self._readable(
                name=span.name,
                context=span.context,
                parent=span.parent,
                resource=self._resource,
                attributes=attributes,
                events=tuple(self._bounded(event) for event in span.events),
                kind=span.kind,
                status=span.status,
                start_time=span.start_time,
                end_time=time.time_ns(),
                instrumentation_scope=span.scope,
            )
        )

    def _bounded(self, event: "Event") -> "Event":
        from opentelemetry.sdk.trace import Event

        limits = self.limits
        attributes = BoundedAttributes(
            limits.max_event_attributes, event.attributes, True, limits.max_attribute_length
        )
        return Event(event.name, attributes, event.timestamp)

    def force_flush(self) -> None:
        self._provider.force_flush()

    def shutdown(self) -> None:
        self._provider.shutdown()  # sends the spans still batched


# The request's server span while it is sampled: the parent of its statements' spans.
CURRENT_SPAN: Final[ContextVar[OpenSpan | None]] = ContextVar("cme_current_span", default=None)


def traces(enabled: bool, endpoint: str = "") -> Traces | None:
    """With OTEL_TRACES_EXPORTER=otlp, spans batched and exported over OTLP/HTTP; else None.

    The SDK reads the rest itself: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and _HEADERS, the
    sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on, and OTEL_TRACES_SAMPLER_ARG),
    OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, and OTEL_BSP_* for the batching.
    """
    # OTEL_SDK_DISABLED turns the SDK's providers into no-ops; the spans recorded here
    # bypass its Tracer, so they honour it by not existing.
    if not enabled or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    # Imported only when tracing is on: the exporter brings protobuf and requests, megabytes
    # per worker that a service without tracing never uses.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from cme_adapters.telemetry import sampling

    limits = span_limits()
    sampler, rule = sampling.configured()
    resource = Resource.create({"service.name": "cme"})
    provider = TracerProvider(sampler=sampler, resource=resource, span_limits=limits)
    return Traces(provider, BatchSpanProcessor(_exporter(endpoint)), limits, rule)


def span_limits() -> "SpanLimits":
    """The SDK's span limits from OTEL_*_LIMIT, with lengths bounded where those leave none."""
    from opentelemetry.sdk.trace import SpanLimits

    limits = SpanLimits()
    if limits.max_attribute_length is None and limits.max_span_attribute_length is None:
        limits = SpanLimits(
            max_attribute_length=EVENT_ATTRIBUTE_LENGTH,
            max_span_attribute_length=SPAN_ATTRIBUTE_LENGTH,
        )
    return limits


def _exporter(endpoint: str) -> "OTLPSpanExporter":
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from cme_adapters.telemetry import otlp_spans

    otlp_spans.install()
    if urlsplit(endpoint).hostname != GOOGLE_OTLP_HOST:
        return OTLPSpanExporter()
    # Google's OTLP endpoint wants an OAuth token: the application default credentials (on GKE,
    # the pod's Workload Identity), refreshed by the session before they expire.
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _project = google.auth.default(scopes=[_CLOUD_PLATFORM])
    session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]  # google-auth
    return OTLPSpanExporter(session=session)
