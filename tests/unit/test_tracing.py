"""Tracing is off by default, Google's OTLP endpoint gets the application's credentials, and
only a request the sampler keeps has spans, handed to the SDK's processor as it would its own."""

import asyncio
import contextlib
import contextvars
from contextlib import nullcontext
from typing import Final

import google.auth
import hypothesis.strategies as st
import pytest
from google.auth.credentials import AnonymousCredentials
from hypothesis import given
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
)
from starlette.testclient import TestClient

from cme_adapters.postgres.repository import page_sql
from cme_adapters.postgres.uow import span_name
from cme_adapters.telemetry import sampling, tracing
from cme_adapters.telemetry.database_spans import DatabaseSpans, database_spans
from cme_adapters.telemetry.tracing import CURRENT_SPAN, Traces
from cme_domain.listing import ProductQuery
from cme_entrypoints.http.middleware import UNMATCHED_PATH
from cme_entrypoints.http.spans import ServerSpans
from cme_entrypoints.trace_context import RequestContext


def test_no_tracer_provider_and_no_span_work_without_otel_configuration(
    client: TestClient,
) -> None:
    assert tracing.traces(enabled=False, endpoint="http://127.0.0.1:4318") is None
    assert database_spans(None, "postgresql") is None
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
    traces = tracing.traces(enabled=True, endpoint=endpoint)
    assert traces is not None
    traces.shutdown()
    assert scopes == ([["https://www.googleapis.com/auth/cloud-platform"]] if asked else [])


def _environment(monkeypatch: pytest.MonkeyPatch, name: str | None, argument: str | None) -> None:
    for variable, value in (("OTEL_TRACES_SAMPLER", name), ("OTEL_TRACES_SAMPLER_ARG", argument)):
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)


def traced(sampler: Sampler | str) -> tuple[Traces, InMemorySpanExporter]:
    """Spans to memory. A sampler by its OTEL_TRACES_SAMPLER name (`name=argument`) is the
    service's own, decided by its rule; an instance is asked, as a plugin's would be."""
    exporter = InMemorySpanExporter()
    rule = None
    if isinstance(sampler, str):
        name, _, argument = sampler.partition("=")
        with pytest.MonkeyPatch.context() as monkeypatch:
            _environment(monkeypatch, name, argument or None)
            sampler, rule = sampling.configured()
    provider = TracerProvider(sampler=sampler)
    return Traces(provider, SimpleSpanProcessor(exporter), rule=rule), exporter


def serve(traces: Traces, context: RequestContext) -> tuple[RequestContext, bool]:
    """What the middleware and the PostgreSQL adapter do for one request with one statement;
    whether the statement's span context manager was a real one."""
    spans = ServerSpans(traces)
    handle, logged = spans.start(SCOPE, context)
    current = CURRENT_SPAN.get()
    if handle is None:  # dropped: no span at all
        assert current is None
    else:
        assert current is not None
        assert (f"{current.context.trace_id:032x}", f"{current.context.span_id:016x}") == (
            logged.trace_id,
            logged.span_id,
        )
    statement = DatabaseSpans(traces, "postgresql")("SELECT", "products")
    with statement:
        pass
    if handle is not None:  # as the middleware does
        spans.finish(handle, "GET", "/products/{id}", 200)
    assert CURRENT_SPAN.get() is None
    return logged, not isinstance(statement, nullcontext)


SCOPE: Final = {"type": "http", "method": "GET", "path": "/products/1", "headers": []}
# TraceIdRatioBased compares the trace id's low 64 bits with rate * 2**64.
LOW_TRACE_ID: Final = "4bf92f3577b34da60000000000000001"
HIGH_TRACE_ID: Final = "4bf92f3577b34da6ffffffffffffff00"
PARENT: Final = "00f067aa0ba902b7"
_NO_PARENT: Final = Context()


def test_a_request_the_sampler_drops_keeps_its_logged_ids_and_makes_no_span() -> None:
    traces, exporter = traced("parentbased_traceidratio=0.5")
    context = RequestContext("r-1", HIGH_TRACE_ID, "1111111111111111", False, None)
    logged, real_statement_span = serve(traces, context)
    assert logged == context  # trace id, span id, and trace_sampled false in every log line
    assert not real_statement_span
    assert exporter.get_finished_spans() == ()


def test_a_sampled_root_request_exports_its_spans_under_the_trace_id_it_logged() -> None:
    traces, exporter = traced("parentbased_traceidratio=0.5")
    context = RequestContext("r-2", LOW_TRACE_ID, "1111111111111111", False, None)
    logged, real_statement_span = serve(traces, context)
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
    assert server.kind is SpanKind.SERVER
    assert server.instrumentation_scope is not None
    assert server.instrumentation_scope.name == "cme.http"
    assert dict(server.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/products/1",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.route": "/products/{id}",
        "http.response.status_code": 200,
    }
    assert server.status.status_code is StatusCode.UNSET
    assert server.start_time is not None
    assert server.end_time is not None
    assert server.start_time <= select.start_time <= select.end_time <= server.end_time
    assert select.kind is SpanKind.CLIENT
    assert select.name == "SELECT products"
    assert select.context.span_id not in (0, server.context.span_id)
    assert dict(select.attributes or {}) == {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.operation.name": "SELECT",
        "db.collection.name": "products",
    }


@pytest.mark.parametrize(
    ("sampler", "parent_sampled"),
    [
        ("parentbased_traceidratio=0", True),
        ("parentbased_always_on", False),
        (ParentBasedTraceIdRatio(0.0), True),
        (ParentBased(ALWAYS_ON), False),
    ],
)
def test_the_callers_sampled_flag_decides_whatever_the_ratio(
    sampler: Sampler | str, parent_sampled: bool
) -> None:
    traces, exporter = traced(sampler)
    context = RequestContext("r-3", HIGH_TRACE_ID, "1111111111111111", parent_sampled, PARENT)
    logged, real_statement_span = serve(traces, context)
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
    traces, exporter = traced("always_on")
    with DatabaseSpans(traces, "postgresql")("SELECT", "products"):
        pass
    assert exporter.get_finished_spans() == ()


def test_a_server_error_is_the_spans_error_and_an_unrouted_request_keeps_the_method() -> None:
    traces, exporter = traced("always_on")
    spans = ServerSpans(traces)
    handle, _ = spans.start(
        SCOPE, RequestContext("r-9", LOW_TRACE_ID, "2222222222222222", False, None)
    )
    spans.finish(handle, "GET", UNMATCHED_PATH, 503)
    (server,) = exporter.get_finished_spans()
    assert server.name == "GET"
    assert server.status.status_code is StatusCode.ERROR
    assert "http.route" not in (server.attributes or {})
    assert (server.attributes or {})["http.response.status_code"] == 503


def test_a_clients_long_path_is_cut_to_the_span_limit_and_never_names_the_span() -> None:
    traces, exporter = traced("always_on")
    spans = ServerSpans(traces)
    path = "/" + "x" * 15_000
    handle, _ = spans.start(
        {**SCOPE, "path": path}, RequestContext("r-8", LOW_TRACE_ID, "2" * 16, False, None)
    )
    spans.finish(handle, "GET", UNMATCHED_PATH, 404)
    (server,) = exporter.get_finished_spans()
    assert server.name == "GET"
    assert (server.attributes or {})["url.path"] == path[: tracing.SPAN_ATTRIBUTE_LENGTH]


def test_the_span_limits_of_the_environment_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "8")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    traces, exporter = traced("always_on")
    spans = ServerSpans(traces)
    handle, _ = spans.start(SCOPE, RequestContext("r-7", LOW_TRACE_ID, "2" * 16, False, None))
    spans.finish(handle, "GET", "/products/{id}", 200)
    (server,) = exporter.get_finished_spans()
    # As the SDK's own span: past the count, the oldest attribute goes.
    assert dict(server.attributes or {}) == {
        "network.protocol.version": "1.1",
        "http.route": "/product",
        "http.response.status_code": 200,
    }
    assert server.dropped_attributes == 3


def test_an_exceptions_attributes_are_bounded_as_the_sdk_bounds_an_events() -> None:
    traces, exporter = traced("always_on")
    spans = ServerSpans(traces)
    handle, _ = spans.start(SCOPE, RequestContext("r-6", LOW_TRACE_ID, "2" * 16, False, None))
    with contextlib.suppress(ValueError), DatabaseSpans(traces, "postgresql")("SELECT", "products"):
        raise ValueError("v" * 20_000)
    spans.finish(handle, "GET", "/products/{id}", 500)
    select, _server = exporter.get_finished_spans()
    (event,) = select.events
    assert (event.attributes or {})["exception.message"] == "v" * tracing.EVENT_ATTRIBUTE_LENGTH


class AskedEachTime(Sampler):
    """A sampler of a kind the fast rule does not know: it is asked for every request."""

    def __init__(self, decision: Decision = Decision.DROP) -> None:
        self.decision = decision
        self.asked: list[tuple[SpanContext, int, dict[str, object]]] = []

    def should_sample(  # type: ignore[override]  # the SDK's signature, as called
        self, parent_context: Context, trace_id: int, name: str, kind: SpanKind, attributes: dict
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        self.asked.append((parent, trace_id, dict(attributes)))
        return SamplingResult(
            self.decision, {"sampler.rule": "kept"}, TraceState([("vendor", "v1")])
        )

    def get_description(self) -> str:
        return "AskedEachTime"


def test_a_sampler_of_another_kind_is_asked_and_a_drop_keeps_the_logged_ids() -> None:
    sampler = AskedEachTime()
    traces, exporter = traced(sampler)
    context = RequestContext("r-4", LOW_TRACE_ID, "1111111111111111", True, PARENT)
    logged, real_statement_span = serve(traces, context)
    ((parent, trace_id, attributes),) = sampler.asked
    assert (f"{parent.span_id:016x}", parent.is_remote, parent.trace_flags.sampled) == (
        PARENT,
        True,
        True,
    )
    assert f"{trace_id:032x}" == LOW_TRACE_ID
    assert attributes["url.path"] == "/products/1"
    assert logged == context._replace(sampled=False)
    assert not real_statement_span
    assert exporter.get_finished_spans() == ()


def test_a_sampler_of_another_kind_that_keeps_a_request_gives_its_attributes_and_state() -> None:
    traces, exporter = traced(AskedEachTime(Decision.RECORD_AND_SAMPLE))
    context = RequestContext("r-5", HIGH_TRACE_ID, "1111111111111111", False, None)
    logged, real_statement_span = serve(traces, context)
    assert logged == context._replace(sampled=True)
    assert real_statement_span
    select, server = exporter.get_finished_spans()
    assert (server.attributes or {})["sampler.rule"] == "kept"
    assert (
        server.context.trace_state == select.context.trace_state == TraceState([("vendor", "v1")])
    )


@pytest.mark.parametrize("sampler", ["parentbased_always_on", ParentBased(ALWAYS_ON)])
def test_a_callers_trace_state_comes_through_the_w3c_propagator_to_the_spans(
    sampler: Sampler | str,
) -> None:
    traces, exporter = traced(sampler)
    headers = [
        (b"traceparent", f"00-{HIGH_TRACE_ID}-{PARENT}-01".encode()),
        (b"tracestate", b"vendor=v1"),
        (b"tracestate", b"other=o2"),
    ]
    spans = ServerSpans(traces)
    context = RequestContext("r-6", HIGH_TRACE_ID, "1111111111111111", True, PARENT)
    handle, _ = spans.start({**SCOPE, "headers": headers}, context)
    with DatabaseSpans(traces, "postgresql")("SELECT", "products"):
        pass
    spans.finish(handle, "GET", "/products/{id}", 200)
    select, server = exporter.get_finished_spans()
    state = TraceState([("vendor", "v1"), ("other", "o2")])
    assert server.parent is not None
    assert server.parent.trace_state == state
    assert server.context.trace_state == select.context.trace_state == state


# OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG as an operator may set them.
SAMPLER_SETTINGS: Final = [
    (None, None),
    ("always_on", None),
    ("always_off", None),
    ("parentbased_always_on", None),
    ("PARENTBASED_ALWAYS_OFF", None),
    ("traceidratio", "0.1"),
    ("traceidratio", "0"),
    ("parentbased_traceidratio", "0.1"),
    ("parentbased_traceidratio", "0.37"),
    ("parentbased_traceidratio", "1"),
    ("parentbased_traceidratio", "1.5"),
    ("traceidratio", "a tenth"),
    ("parentbased_traceidratio", None),
    ("jaeger_remote", None),
]


@pytest.mark.parametrize(("name", "argument"), SAMPLER_SETTINGS)
def test_the_configured_sampler_is_the_one_the_sdk_builds_from_the_same_environment(
    monkeypatch: pytest.MonkeyPatch, name: str | None, argument: str | None
) -> None:
    # If an OpenTelemetry release reads these variables otherwise, this fails.
    _environment(monkeypatch, name, argument)
    sampler, _ = sampling.configured()
    sdk = TracerProvider().sampler
    assert (type(sampler), sampler.get_description()) == (type(sdk), sdk.get_description())


@pytest.mark.parametrize(("name", "argument"), SAMPLER_SETTINGS)
@given(
    trace_id=st.integers(1, 2**128 - 1),
    parent=st.sampled_from([None, True, False]),
)
def test_the_fast_rule_decides_as_the_configured_sampler_itself(
    name: str | None, argument: str | None, trace_id: int, parent: bool | None
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _environment(monkeypatch, name, argument)
        sampler, rule = sampling.configured()
    context = _NO_PARENT
    if parent is not None:
        flags = TraceFlags(TraceFlags.SAMPLED if parent else TraceFlags.DEFAULT)
        remote = SpanContext(trace_id, 0x1234, is_remote=True, trace_flags=flags)
        context = trace.set_span_in_context(NonRecordingSpan(remote))
    decision = sampler.should_sample(context, trace_id, "GET").decision
    assert rule.sampled(f"{trace_id:032x}", parent) is decision.is_sampled()


def test_the_service_samples_with_the_configured_sampler_and_its_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _environment(monkeypatch, "parentbased_traceidratio", "0.25")
    traces = tracing.traces(True)
    assert traces is not None
    try:
        assert traces.sampler.get_description() == ParentBasedTraceIdRatio(0.25).get_description()
        assert traces.rule is not None
        assert traces.rule.bound == TraceIdRatioBased.get_bound_for_rate(0.25)
    finally:
        traces.shutdown()


def test_a_statement_that_fails_records_its_error_and_still_ends_and_leaves_the_context() -> None:
    traces, exporter = traced("always_on")
    spans = ServerSpans(traces)
    handle, _ = spans.start(
        SCOPE, RequestContext("r-6", LOW_TRACE_ID, "3333333333333333", False, None)
    )

    def statement_that_fails() -> None:
        with DatabaseSpans(traces, "postgresql")("SELECT", "products"):
            raise ConnectionError("server closed the connection")

    with pytest.raises(ConnectionError):
        statement_that_fails()
    assert CURRENT_SPAN.get() is handle[0]
    spans.finish(handle, "GET", "/products/{id}", 503)
    select, server = exporter.get_finished_spans()
    assert select.parent is not None
    assert select.parent.span_id == server.context.span_id == 0x3333333333333333
    assert select.status.status_code is StatusCode.ERROR
    assert select.status.description == "ConnectionError: server closed the connection"
    (event,) = select.events
    assert event.name == "exception"
    assert dict(event.attributes or {}) | {"exception.stacktrace": ""} == {
        "exception.type": "ConnectionError",
        "exception.message": "server closed the connection",
        "exception.stacktrace": "",
        "exception.escaped": "False",
    }
    assert "statement_that_fails" in str((event.attributes or {})["exception.stacktrace"])


def test_a_cancelled_statement_ends_its_span_without_calling_it_an_error() -> None:
    traces, exporter = traced("always_on")
    spans = ServerSpans(traces)
    handle, _ = spans.start(
        SCOPE, RequestContext("r-7", LOW_TRACE_ID, "3333333333333333", False, None)
    )
    with (
        pytest.raises(asyncio.CancelledError),
        DatabaseSpans(traces, "postgresql")("SELECT", "products"),
    ):
        raise asyncio.CancelledError
    spans.finish(handle, "GET", "/products/{id}", 200)
    select, _server = exporter.get_finished_spans()
    assert select.status.status_code is StatusCode.UNSET
    assert select.events == ()


def test_the_page_for_q_is_traced_as_a_select_on_products() -> None:
    assert span_name(page_sql(ProductQuery(name_contains="lamp"))) == ("SELECT", "products")
    assert span_name(page_sql(ProductQuery())) == ("SELECT", "products")


def test_a_dropped_request_started_from_inside_a_sampled_one_makes_no_statement_span() -> None:
    """uvicorn starts a pipelined request's task inside the previous request's send: the new
    task's context holds the previous request's span until the new request decides."""
    traces, exporter = traced("parentbased_traceidratio=0.5")
    spans = ServerSpans(traces)
    first, _ = spans.start(SCOPE, RequestContext("r-1", LOW_TRACE_ID, "1" * 16, False, None))

    async def pipelined() -> object:
        dropped = RequestContext("r-2", HIGH_TRACE_ID, "2" * 16, False, None)
        handle, _ = spans.start(SCOPE, dropped)
        assert handle is None
        return DatabaseSpans(traces, "postgresql")("SELECT", "products")

    statement = asyncio.run(pipelined())  # a task, with a copy of this context
    assert isinstance(statement, nullcontext)
    spans.finish(first, "GET", "/products/{id}", 200)
    assert [span.name for span in exporter.get_finished_spans()] == ["GET /products/{id}"]


def test_a_task_that_outlives_its_sampled_request_makes_no_statement_span() -> None:
    traces, exporter = traced("always_on")
    spans = ServerSpans(traces)
    handle, _ = spans.start(SCOPE, RequestContext("r-1", LOW_TRACE_ID, "1" * 16, False, None))
    left_behind = contextvars.copy_context()  # as a task the request started holds it
    spans.finish(handle, "GET", "/products/{id}", 200)
    statement = left_behind.run(DatabaseSpans(traces, "postgresql"), "SELECT", "products")
    assert isinstance(statement, nullcontext)
    assert len(exporter.get_finished_spans()) == 1


def test_otel_sdk_disabled_turns_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.traces(enabled=True, endpoint="http://127.0.0.1:4318") is None


class ServerSpansOnly(Sampler):
    """A sampler of another kind that keeps server spans with no attributes of its own."""

    def should_sample(  # type: ignore[override]  # the SDK's signature, as called
        self, parent_context: Context, trace_id: int, name: str, kind: SpanKind, attributes: dict
    ) -> SamplingResult:
        kept = Decision.RECORD_AND_SAMPLE if kind is SpanKind.SERVER else Decision.DROP
        return SamplingResult(kept, None)

    def get_description(self) -> str:
        return "ServerSpansOnly"


def test_a_sampler_of_another_kind_decides_each_statement_and_gives_each_span_its_attributes() -> (
    None
):
    traces, exporter = traced(ServerSpansOnly())
    context = RequestContext("r-8", LOW_TRACE_ID, "1111111111111111", False, None)
    logged, real_statement_span = serve(traces, context)
    assert logged.sampled is True
    assert not real_statement_span  # the sampler dropped the client span
    (server,) = exporter.get_finished_spans()
    # As the SDK's Tracer does: the span's attributes are those the sampler returned (none),
    # plus what was set afterwards.
    assert dict(server.attributes or {}) == {
        "http.route": "/products/{id}",
        "http.response.status_code": 200,
    }


def test_the_spans_are_those_the_sdks_tracer_would_have_made() -> None:
    """The fields an exporter reads, for the same request, both ways (ids and times apart)."""
    traces, exporter = traced("always_on")
    caller = RequestContext("r-9", LOW_TRACE_ID, "1111111111111111", True, PARENT)
    spans = ServerSpans(traces)
    handle, _ = spans.start(SCOPE, caller)
    with pytest.raises(ConnectionError), DatabaseSpans(traces, "postgresql")("SELECT", "products"):
        raise ConnectionError("server closed the connection")
    spans.finish(handle, "GET", "/products/{id}", 503)
    ours = exporter.get_finished_spans()

    sdk_exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(sdk_exporter))
    remote = SpanContext(int(LOW_TRACE_ID, 16), int(PARENT, 16), True, TraceFlags(1))
    server = provider.get_tracer("cme.http").start_span(
        "GET",
        trace.set_span_in_context(NonRecordingSpan(remote)),
        SpanKind.SERVER,
        {
            "http.request.method": "GET",
            "url.path": "/products/1",
            "url.scheme": "http",
            "network.protocol.version": "1.1",
        },
    )
    statement = provider.get_tracer("cme.db").start_span(
        "SELECT products",
        trace.set_span_in_context(server),
        SpanKind.CLIENT,
        {
            "db.system": "postgresql",
            "db.system.name": "postgresql",
            "db.operation.name": "SELECT",
            "db.collection.name": "products",
        },
    )
    failure = ConnectionError("server closed the connection")
    statement.record_exception(failure)
    statement.set_status(StatusCode.ERROR, "ConnectionError: server closed the connection")
    statement.end()
    server.update_name("GET /products/{id}")
    server.set_attribute("http.route", "/products/{id}")
    server.set_attribute("http.response.status_code", 503)
    server.set_status(StatusCode.ERROR)
    server.end()

    def fields(span: ReadableSpan) -> tuple[object, ...]:
        parent = span.parent
        return (
            span.name,
            span.kind,
            dict(span.attributes or {}),
            span.status.status_code,
            span.status.description,
            [(e.name, sorted((e.attributes or {}).keys())) for e in span.events],
            span.context.trace_id,
            span.context.trace_flags.sampled,
            span.context.is_remote,
            (parent.is_remote, parent.trace_id) if parent is not None else None,
            span.instrumentation_scope.name if span.instrumentation_scope else None,
            dict(span.resource.attributes),
        )

    assert [fields(s) for s in ours] == [fields(s) for s in sdk_exporter.get_finished_spans()]
    assert ours[1].parent is not None
    assert f"{ours[1].parent.span_id:016x}" == PARENT
