"""Tracing is off by default, Google's OTLP endpoint gets the application's credentials, and
only a request the sampler keeps goes through the SDK."""

from typing import Final

import google.auth
import pytest
from google.auth.credentials import AnonymousCredentials
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
)
from starlette.testclient import TestClient

from cme_adapters import tracing
from cme_adapters.trace_ids import RequestTraceIds
from cme_adapters.tracing import ROOT_TRACE_ID, DatabaseSpans
from cme_entrypoints.http.spans import ServerSpans
from cme_entrypoints.trace_context import RequestContext


def test_no_tracer_provider_and_no_span_work_without_otel_configuration(
    client: TestClient,
) -> None:
    assert tracing.tracer_provider(enabled=False, endpoint="http://127.0.0.1:4318") is None
    middleware = client.app.middleware_stack  # type: ignore[attr-defined]
    while not hasattr(middleware, "spans"):
        middleware = middleware.app
    assert middleware.spans is None


@pytest.mark.parametrize(
    ("endpoint", "asked"),
    [("https://telemetry.googleapis.com", True), ("http://collector:4318", False)],
)
def test_only_googles_endpoint_is_sent_the_application_default_credentials(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, asked: bool
) -> None:
    scopes: list[object] = []

    def default(**kwargs: object) -> tuple[AnonymousCredentials, str]:
        scopes.append(kwargs["scopes"])
        return AnonymousCredentials(), "proj-1"

    monkeypatch.setattr(google.auth, "default", default)
    provider = tracing.tracer_provider(enabled=True, endpoint=endpoint)
    assert provider is not None
    provider.shutdown()
    assert scopes == ([["https://www.googleapis.com/auth/cloud-platform"]] if asked else [])


def traced(sampler: Sampler) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, id_generator=RequestTraceIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def serve(provider: TracerProvider, context: RequestContext) -> tuple[RequestContext, bool]:
    """What the middleware and the PostgreSQL adapter do for one request with one statement;
    whether the statement's span context manager was a real one."""
    spans = ServerSpans(provider)
    handle, logged = spans.start(SCOPE, context)
    current = trace.get_current_span().get_span_context()
    assert (f"{current.trace_id:032x}", f"{current.span_id:016x}") == (
        logged.trace_id,
        logged.span_id,
    )
    statement = DatabaseSpans(provider, "postgresql")("SELECT", "products")
    with statement:
        pass
    spans.finish(handle, "GET", "/products/{id}", 200)
    assert not trace.get_current_span().get_span_context().is_valid
    return logged, statement is not DatabaseSpans(None, "postgresql")("SELECT")


SCOPE: Final = {"type": "http", "method": "GET", "path": "/products/1", "headers": []}
# TraceIdRatioBased compares the trace id's low 64 bits with rate * 2**64.
LOW_TRACE_ID: Final = "4bf92f3577b34da60000000000000001"
HIGH_TRACE_ID: Final = "4bf92f3577b34da6ffffffffffffff00"
PARENT: Final = "00f067aa0ba902b7"


def test_a_request_the_sampler_drops_keeps_its_logged_ids_and_makes_no_sdk_span() -> None:
    provider, exporter = traced(ParentBasedTraceIdRatio(0.5))
    context = RequestContext("r-1", HIGH_TRACE_ID, "1111111111111111", False, None)
    logged, real_statement_span = serve(provider, context)
    assert logged == context  # trace id, span id, and trace_sampled false in every log line
    assert not real_statement_span
    assert exporter.get_finished_spans() == ()


def test_a_sampled_root_request_exports_its_spans_under_the_trace_id_it_logged() -> None:
    provider, exporter = traced(ParentBasedTraceIdRatio(0.5))
    context = RequestContext("r-2", LOW_TRACE_ID, "1111111111111111", False, None)
    logged, real_statement_span = serve(provider, context)
    assert real_statement_span
    assert logged.trace_id == LOW_TRACE_ID
    assert logged.sampled is True
    select, server = exporter.get_finished_spans()
    assert server.name == "GET /products/{id}"
    assert server.parent is None
    assert f"{server.context.span_id:016x}" == logged.span_id
    assert {f"{s.context.trace_id:032x}" for s in (select, server)} == {LOW_TRACE_ID}
    assert select.parent is not None
    assert select.parent.span_id == server.context.span_id
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/products/{id}"


@pytest.mark.parametrize(
    ("sampler", "parent_sampled"),
    [(ParentBasedTraceIdRatio(0.0), True), (ParentBased(ALWAYS_ON), False)],
)
def test_the_callers_sampled_flag_decides_whatever_the_ratio(
    sampler: Sampler, parent_sampled: bool
) -> None:
    provider, exporter = traced(sampler)
    context = RequestContext("r-3", HIGH_TRACE_ID, "1111111111111111", parent_sampled, PARENT)
    logged, real_statement_span = serve(provider, context)
    assert logged.trace_id == HIGH_TRACE_ID
    assert logged.sampled is parent_sampled
    assert real_statement_span is parent_sampled
    exported = exporter.get_finished_spans()
    assert len(exported) == (2 if parent_sampled else 0)
    for span in exported:
        assert f"{span.context.trace_id:032x}" == HIGH_TRACE_ID
    if parent_sampled:
        assert exported[1].parent is not None
        assert f"{exported[1].parent.span_id:016x}" == PARENT


def test_a_statement_outside_any_sampled_request_makes_no_span() -> None:
    provider, exporter = traced(ALWAYS_ON)
    with DatabaseSpans(provider, "postgresql")("SELECT", "products"):
        pass
    assert exporter.get_finished_spans() == ()


def test_the_trace_ids_are_random_but_for_a_root_span_started_under_a_preset_one() -> None:
    ids = RequestTraceIds()
    assert ids.generate_trace_id() != ids.generate_trace_id()
    token = ROOT_TRACE_ID.set(int(LOW_TRACE_ID, 16))
    try:
        assert ids.generate_trace_id() == int(LOW_TRACE_ID, 16)
    finally:
        ROOT_TRACE_ID.reset(token)
