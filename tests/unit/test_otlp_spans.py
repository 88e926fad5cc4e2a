"""The spans' own OTLP encoder writes the message the exporter's encoder would."""

from collections.abc import Sequence

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.exporter.otlp.proto.http import trace_exporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
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

from cme_adapters.telemetry import otlp_spans
from cme_adapters.telemetry.database_spans import DatabaseSpans
from cme_adapters.telemetry.tracing import Traces
from cme_entrypoints.http.spans import ServerSpans
from cme_entrypoints.trace_context import RequestContext
from tests.otlp_receiver import otlp_receiver


def finished_spans(**attributes: object) -> tuple[ReadableSpan, ...]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "cme", "pid": 7}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("cme.http", "1.2", schema_url="https://opentelemetry.io/s/1.26")
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    parent = set_span_in_context(NonRecordingSpan(remote))
    server = tracer.start_span(
        "GET",
        parent,
        SpanKind.SERVER,
        {"http.request.method": "GET", "url.path": "/p/é", "url.query": "q=" + "x" * 300},
    )
    with tracer.start_as_current_span("child", set_span_in_context(server)):
        statement = provider.get_tracer("cme.db").start_span(
            "SELECT products", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"}
        )
        statement.end()
    server.update_name("GET /products/{id}")
    server.set_attributes({"http.response.status_code": 503, "ratio": 0.25, "ok": False})
    server.set_attributes(attributes)
    server.set_status(Status(StatusCode.ERROR, "upstream"))
    server.end()
    root = provider.get_tracer("cme.db").start_span("INSERT", kind=SpanKind.CLIENT)
    root.set_attribute("negative", -3)
    root.end()
    return exporter.get_finished_spans()


def recorded_spans() -> tuple[ReadableSpan, ...]:
    """Spans as the service records them: a request under a caller's span, one statement."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "cme"}))
    traces = Traces(provider, SimpleSpanProcessor(exporter))
    server = ServerSpans(traces)
    context = RequestContext("r", "4bf92f3577b34da6a3ce929d0e0e4736", "1" * 16, True, "2" * 16)
    scope = {"type": "http", "method": "PUT", "path": "/products/1", "headers": []}
    handle, _ = server.start(scope, context)
    with DatabaseSpans(traces, "postgresql")("UPDATE", "products"):
        pass
    server.finish(handle, "PUT", "/products/{id}", 200)
    return exporter.get_finished_spans()


def decoded(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)


def test_plain_spans_are_encoded_as_the_exporters_encoder_does() -> None:
    spans = finished_spans()
    assert len(spans) == 4
    ours = decoded(otlp_spans.encode_spans(spans).SerializePartialToString())
    assert ours == sdk_encode(spans)
    assert len(ours.resource_spans[0].scope_spans) == 2


def test_the_services_own_spans_are_encoded_as_the_exporters_encoder_does() -> None:
    spans = recorded_spans()
    assert [span.name for span in spans] == ["UPDATE products", "PUT /products/{id}"]
    ours = decoded(otlp_spans.encode_spans(spans).SerializePartialToString())
    assert ours == sdk_encode(spans)
    scopes = [scope.scope.name for scope in ours.resource_spans[0].scope_spans]
    assert sorted(scopes) == ["cme.db", "cme.http"]


@pytest.mark.parametrize("value", [(1, 2), {"a": 1}, b"\x01"])
def test_a_span_with_a_value_of_another_kind_goes_to_the_exporters_encoder(value: object) -> None:
    spans = finished_spans(other=value)
    assert otlp_spans.encode_spans(spans) == sdk_encode(spans)


def test_paths_a_client_chooses_do_not_fill_the_encoders_cache() -> None:
    """Repeated attributes are written once and kept; a client's unknown paths are not kept."""
    for n in range(5000):
        spans = finished_spans(**{"url.path": f"/{n:06d}" + "x" * 1000})
        assert decoded(otlp_spans.encode_spans(spans).SerializePartialToString()) == sdk_encode(
            spans
        )
    held = sum(len(str(key[3])) + len(value) for key, value in otlp_spans._WRITTEN.items())
    assert held < 256 * 1024


def test_a_span_with_an_event_goes_to_the_exporters_encoder() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("cme.db").start_span("SELECT")
    span.record_exception(ConnectionError("server closed the connection"))
    span.end()
    spans = exporter.get_finished_spans()
    assert otlp_spans.encode_spans(spans) == sdk_encode(spans)


def test_installed_the_otlp_http_exporter_sends_what_it_encodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trace_exporter, "encode_spans", trace_exporter.encode_spans)
    encoded: list[int] = []

    def counted(spans: Sequence[ReadableSpan]) -> bytes:
        encoded.append(len(spans))
        return encode(spans)

    encode = otlp_spans.encode
    monkeypatch.setattr(otlp_spans, "encode", counted)
    otlp_spans.install()
    spans = finished_spans()
    with otlp_receiver() as receiver:
        exporter = trace_exporter.OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
    assert encoded == [4]
    assert sorted(span.name for span in receiver.spans) == sorted(s.name for s in spans)


def test_a_failed_statements_span_goes_to_the_exporters_encoder_with_its_exception() -> None:
    exporter = InMemorySpanExporter()
    traces = Traces(TracerProvider(), SimpleSpanProcessor(exporter))
    server = ServerSpans(traces)
    context = RequestContext("r", "4bf92f3577b34da6a3ce929d0e0e4736", "1" * 16, False, None)
    scope = {"type": "http", "method": "GET", "path": "/products/1", "headers": []}
    handle, _ = server.start(scope, context)
    with (
        pytest.raises(ConnectionError),
        DatabaseSpans(traces, "postgresql")("SELECT", "products"),
    ):
        raise ConnectionError("server closed the connection")
    server.finish(handle, "GET", "/products/{id}", 503)
    spans = exporter.get_finished_spans()
    encoded = otlp_spans.encode_spans(spans)
    assert encoded == sdk_encode(spans)
    select = encoded.resource_spans[0].scope_spans
    events = [event for scope in select for span in scope.spans for event in span.events]
    assert [event.name for event in events] == ["exception"]
    assert {kv.key for kv in events[0].attributes} >= {"exception.type", "exception.stacktrace"}
