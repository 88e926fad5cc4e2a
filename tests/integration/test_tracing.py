"""OpenTelemetry traces from a real uvicorn to a real OTLP/HTTP receiver, and in the log lines."""

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from cme_adapters.telemetry.database_spans import DatabaseSpans, database_spans
from cme_adapters.telemetry.tracing import Traces, traces
from cme_entrypoints.http.spans import ServerSpans
from cme_entrypoints.trace_context import RequestContext
from tests.otlp_receiver import Receiver, attributes, otlp_receiver

from .server import running_cme

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
UNKNOWN = "/products/00000000-0000-7000-8000-000000000000"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as running:
        yield running


@contextmanager
def traced_cme(
    database_url: str, tmp_path: Path, receiver: Receiver, ratio: str
) -> Iterator[tuple[str, Path]]:
    """`cme serve` exporting to the receiver, sampling roots at `ratio` (parent-based)."""
    log = tmp_path / "cme.log"
    env = {
        "DATABASE_URL": database_url,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": ratio,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "GOOGLE_CLOUD_PROJECT": "proj-1",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    with running_cme(env, tmp_path, log) as (base_url, _process):
        yield base_url, log


@pytest.fixture
def traced(
    migrated_postgres_url: str, tmp_path: Path, receiver: Receiver
) -> Iterator[tuple[str, Path]]:
    with traced_cme(migrated_postgres_url, tmp_path, receiver, "1.0") as running:
        yield running


def get(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return error.code


def spans_of(receiver: Receiver, trace_id: str, count: int = 1) -> list[Span]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [s for s in receiver.spans if s.trace_id.hex() == trace_id]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    return [s for s in receiver.spans if s.trace_id.hex() == trace_id]


def access_line(log: Path, trace_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while True:
        for line in log.read_text().splitlines():
            if line.startswith("{") and trace_id in line and '"cme.access"' in line:
                found: dict[str, object] = json.loads(line)
                return found
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_a_sampled_request_exports_a_server_span_under_the_callers_and_logs_its_ids(
    traced: tuple[str, Path], receiver: Receiver
) -> None:
    base_url, log = traced
    status = get(f"{base_url}{UNKNOWN}", {"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
    assert status == 404
    (span,) = [s for s in spans_of(receiver, TRACE_ID, 2) if s.kind == Span.SPAN_KIND_SERVER]
    assert receiver.paths[0] == "/v1/traces"
    assert span.name == "GET /products/{id}"
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.parent_span_id.hex() == PARENT
    assert attributes(span) == {
        "http.request.method": "GET",
        "url.path": UNKNOWN,
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.route": "/products/{id}",
        "http.response.status_code": 404,
    }
    line = access_line(log, TRACE_ID)
    assert line["logging.googleapis.com/trace"] == f"projects/proj-1/traces/{TRACE_ID}"
    assert line["logging.googleapis.com/spanId"] == span.span_id.hex()
    assert line["logging.googleapis.com/trace_sampled"] is True


def test_a_request_without_a_parent_starts_a_trace_the_log_line_names(
    traced: tuple[str, Path], receiver: Receiver
) -> None:
    base_url, log = traced
    assert get(f"{base_url}/health", {"X-Request-ID": "no-parent-1"}) == 200
    deadline = time.monotonic() + 10
    while not any(s.name == "GET /health" for s in receiver.spans):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lines = [json.loads(x) for x in log.read_text().splitlines() if "no-parent-1" in x]
    (line,) = [x for x in lines if x["logger"] == "cme.access"]
    trace_id = str(line["logging.googleapis.com/trace"]).rsplit("/", 1)[1]
    (span,) = spans_of(receiver, trace_id)
    assert span.name == "GET /health"
    assert span.parent_span_id == b""
    assert line["logging.googleapis.com/spanId"] == span.span_id.hex()


def test_a_parent_that_did_not_sample_is_followed(
    traced: tuple[str, Path], receiver: Receiver
) -> None:
    base_url, log = traced
    other = "5bf92f3577b34da6a3ce929d0e0e4736"
    assert get(f"{base_url}/health", {"traceparent": f"00-{other}-{PARENT}-00"}) == 200
    assert get(f"{base_url}{UNKNOWN}", {"traceparent": f"00-{TRACE_ID}-{PARENT}-01"}) == 404
    assert spans_of(receiver, TRACE_ID)  # the sampled one arrived, so the other had its chance
    assert spans_of(receiver, other, count=0) == []
    assert access_line(log, other)["logging.googleapis.com/trace_sampled"] is False


def test_database_spans_are_children_of_the_current_span(receiver: Receiver) -> None:
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
    recorded = Traces(provider, SimpleSpanProcessor(exporter))
    server = ServerSpans(recorded)
    context = RequestContext("r", TRACE_ID, "1" * 16, True, PARENT)
    scope = {"type": "http", "method": "GET", "path": "/products", "headers": []}
    handle, _logged = server.start(scope, context)
    spans = DatabaseSpans(recorded, "postgresql")
    with spans("SELECT", "products"):
        pass
    with spans("INSERT"):
        pass
    server.finish(handle, "GET", "/products", 200)
    recorded.shutdown()
    found = {span.name: span for span in spans_of(receiver, TRACE_ID, count=3)}
    select, insert = found["SELECT products"], found["INSERT"]
    assert select.parent_span_id == insert.parent_span_id == bytes.fromhex("1" * 16)
    assert found["GET /products"].parent_span_id == bytes.fromhex(PARENT)
    assert select.kind == Span.SPAN_KIND_CLIENT
    assert attributes(select) == {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.operation.name": "SELECT",
        "db.collection.name": "products",
    }
    assert "db.collection.name" not in attributes(insert)


def test_without_tracing_the_adapter_is_given_no_spans_at_all() -> None:
    assert traces(enabled=False) is None
    assert database_spans(None, "postgresql") is None


def test_a_request_that_reads_postgresql_exports_a_database_span_under_its_server_span(
    traced: tuple[str, Path], receiver: Receiver
) -> None:
    base_url, _log = traced
    trace_id = "6bf92f3577b34da6a3ce929d0e0e4736"
    assert get(f"{base_url}{UNKNOWN}", {"traceparent": f"00-{trace_id}-{PARENT}-01"}) == 404
    found = {span.name: span for span in spans_of(receiver, trace_id, count=2)}
    server, select = found["GET /products/{id}"], found["SELECT products"]
    assert select.parent_span_id == server.span_id
    assert select.kind == Span.SPAN_KIND_CLIENT
    assert attributes(select)["db.system.name"] == "postgresql"
    assert attributes(select)["db.operation.name"] == "SELECT"


@pytest.fixture
def traced_at_zero(
    migrated_postgres_url: str, tmp_path: Path, receiver: Receiver
) -> Iterator[tuple[str, Path]]:
    """A ratio of 0: only requests whose caller sampled them are traced."""
    with traced_cme(migrated_postgres_url, tmp_path, receiver, "0") as running:
        yield running


def test_an_unsampled_request_logs_its_trace_and_exports_nothing_while_a_sampled_caller_is_traced(
    traced_at_zero: tuple[str, Path], receiver: Receiver
) -> None:
    base_url, log = traced_at_zero
    assert get(f"{base_url}{UNKNOWN}", {"X-Request-ID": "unsampled-1"}) == 404
    assert get(f"{base_url}{UNKNOWN}", {"traceparent": f"00-{TRACE_ID}-{PARENT}-01"}) == 404
    found = {span.name: span for span in spans_of(receiver, TRACE_ID, count=2)}
    assert set(found) == {"GET /products/{id}", "SELECT products"}
    assert found["GET /products/{id}"].parent_span_id.hex() == PARENT
    assert access_line(log, TRACE_ID)["logging.googleapis.com/trace_sampled"] is True
    lines = [json.loads(x) for x in log.read_text().splitlines() if "unsampled-1" in x]
    (line,) = [x for x in lines if x["logger"] == "cme.access"]
    trace = str(line["logging.googleapis.com/trace"])
    assert trace.startswith("projects/proj-1/traces/")
    assert len(trace.rsplit("/", 1)[1]) == 32
    assert len(str(line["logging.googleapis.com/spanId"])) == 16
    assert line["logging.googleapis.com/trace_sampled"] is False
    # The sampled request's spans arrived, so the unsampled one's would have by now.
    assert spans_of(receiver, trace.rsplit("/", 1)[1], count=0) == []
    assert {span.trace_id.hex() for span in receiver.spans} == {TRACE_ID}
