"""OpenTelemetry traces, set up from the standard OTEL_* variables, and spans for database calls."""

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
    get_current_span,
)

if TYPE_CHECKING:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

_NO_SPAN: Final = nullcontext()
# Set only around the start of a sampled request's root span: see trace_sampling.RequestTraceIds.
ROOT_TRACE_ID: Final[ContextVar[int]] = ContextVar("cme_root_trace_id", default=0)
GOOGLE_OTLP_HOST: Final = "telemetry.googleapis.com"
_CLOUD_PLATFORM: Final = "https://www.googleapis.com/auth/cloud-platform"


def tracer_provider(enabled: bool, endpoint: str = "") -> "SdkTracerProvider | None":
    """With OTEL_TRACES_EXPORTER=otlp, a provider exporting over OTLP/HTTP; otherwise None.

    The SDK reads the rest itself: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and _HEADERS, the
    sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on, and OTEL_TRACES_SAMPLER_ARG),
    OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, and OTEL_BSP_* for the batching.
    """
    if not enabled:
        return None
    # Imported only when tracing is on: the exporter brings protobuf and requests, megabytes
    # per worker that a service without tracing never uses.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from cme_adapters.trace_sampling import RequestTraceIds

    provider = SdkProvider(
        resource=Resource.create({"service.name": "cme"}), id_generator=RequestTraceIds()
    )
    provider.add_span_processor(BatchSpanProcessor(_exporter(endpoint)))
    return provider


def _exporter(endpoint: str) -> "OTLPSpanExporter":
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from cme_adapters import otlp_spans

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


class DatabaseSpans:
    """A client span per database call, a child of the request's server span:

    `with spans("SELECT", "products"): await cursor.execute(...)`. Without tracing, and outside
    a recording span (a request that was not sampled, a statement run outside any request), it
    returns one shared do-nothing context manager: no span object, no context change.
    """

    def __init__(self, provider: TracerProvider | None, system: str) -> None:
        self._tracer: Tracer | None = provider.get_tracer("cme.db") if provider else None
        self._system = system

    def __call__(self, operation: str, collection: str = "") -> AbstractContextManager[object]:
        if self._tracer is None or not get_current_span().is_recording():
            return _NO_SPAN
        attributes: Mapping[str, str] = {
            "db.system": self._system,  # the name before semantic conventions 1.26
            "db.system.name": self._system,
            "db.operation.name": operation,
            **({"db.collection.name": collection} if collection else {}),
        }
        span = self._tracer.start_span(
            f"{operation} {collection}" if collection else operation,
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        return _Statement(span)


class _Statement:
    """A statement's span as a context manager: it records an exception escaping the block
    (as use_span does), then ends. Not start_as_current_span: its generator-based context
    managers cost more than the span under load (py-spy, bench/), and the span need not be
    current -- it has no children -- while attach/detach cost about a tenth of a sampled
    statement's span (bench/tracing_cost.py).
    """

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # As use_span: an Exception, not a cancellation or an exit, is the statement's error.
        if isinstance(exc, Exception):
            self._span.record_exception(exc)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._span.end()


def database_spans(provider: TracerProvider | None, system: str) -> DatabaseSpans | None:
    """Spans for database calls when tracing is on; None lets the adapter skip even the call."""
    return DatabaseSpans(provider, system) if provider is not None else None
