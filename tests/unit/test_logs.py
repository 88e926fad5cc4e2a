"""Log lines are JSON that Cloud Logging understands, and every line of a request has its id."""

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase, InMemoryProductRepository
from cme_entrypoints import logs
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.settings import Settings
from cme_entrypoints.trace_context import RequestContext

from .conftest import API_KEY

CLOUD = "0AF7651916CD43DD8448EB211C80319C/12345;o=1"


def test_access_lines_carry_severity_request_id_subject_and_trace(
    writer: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "json")
    try:
        writer.get("/health", headers={"X-Request-ID": "req-1", "X-Cloud-Trace-Context": CLOUD})
        body = {"sku": "L", "name": "Lamp", "price": "1", "quantity": 1}
        writer.post("/products", json=body, headers={"X-Request-ID": "req-2"})
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    finally:
        logging.getLogger().handlers.clear()
    access = [line for line in lines if line["logger"] == "cme.access"]
    assert [line["request_id"] for line in access] == ["req-1", "req-2"]
    health, create = access
    assert health["severity"] == "INFO"
    assert health["httpRequest"] == {
        "requestMethod": "GET",
        "requestUrl": "/health",
        "status": 200,
        "latency": health["httpRequest"]["latency"],  # type: ignore[index]
        "remoteIp": "testclient",
        "userAgent": "testclient",
    }
    assert str(health["httpRequest"]["latency"]).endswith("s")  # type: ignore[index]
    assert health["logging.googleapis.com/trace"] == "0af7651916cd43dd8448eb211c80319c"
    assert health["logging.googleapis.com/trace_sampled"] is True
    assert create["logging.googleapis.com/trace"] != health["logging.googleapis.com/trace"]
    assert str(create["subject"]).startswith("api-key:")
    assert API_KEY not in json.dumps(lines)
    assert "subject" not in health


def test_lines_logged_while_serving_a_request_carry_its_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("INFO", "json")
    context = RequestContext("inner-7", "ab" * 16, "cd" * 8, True, None)
    token = logs.request_context.set(context)
    try:
        logging.getLogger("cme.anything").warning("deep inside a use case")
    finally:
        logs.request_context.reset(token)
        logging.getLogger().handlers.clear()
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (line["request_id"], line["severity"], line["message"]) == (
        "inner-7",
        "WARNING",
        "deep inside a use case",
    )
    assert line["logging.googleapis.com/trace"] == "ab" * 16
    assert line["logging.googleapis.com/spanId"] == "cd" * 8
    assert line["logging.googleapis.com/trace_sampled"] is True


def test_console_format_is_one_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "console")
    try:
        logging.getLogger("cme.x").info("hello %s", "there")
    finally:
        logging.getLogger().handlers.clear()
    out = capsys.readouterr().out.strip()
    assert out.endswith("INFO    cme.x hello there")


def access_lines(out: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "cme.access"]


def test_a_traceparent_names_the_trace_and_this_server_gets_a_span_of_its_own(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    logs.configure("INFO", "json")
    try:
        client.get("/health", headers={"traceparent": parent, "X-Cloud-Trace-Context": CLOUD})
    finally:
        logging.getLogger().handlers.clear()
    (line,) = access_lines(capsys.readouterr().out)
    assert line["logging.googleapis.com/trace"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    span = str(line["logging.googleapis.com/spanId"])
    assert len(span) == 16
    assert span != "00f067aa0ba902b7"
    int(span, 16)
    assert line["logging.googleapis.com/trace_sampled"] is True


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "garbage",
    ],
)
def test_an_invalid_traceparent_starts_a_new_unsampled_trace(
    client: TestClient, capsys: pytest.CaptureFixture[str], traceparent: str
) -> None:
    logs.configure("INFO", "json")
    try:
        client.get("/health", headers={"traceparent": traceparent})
    finally:
        logging.getLogger().handlers.clear()
    (line,) = access_lines(capsys.readouterr().out)
    trace = str(line["logging.googleapis.com/trace"])
    assert len(trace) == 32
    assert trace != "4bf92f3577b34da6a3ce929d0e0e4736"
    assert int(trace, 16) != 0
    assert line["logging.googleapis.com/trace_sampled"] is False


def test_with_a_project_the_trace_is_the_full_cloud_trace_resource_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("INFO", "json", project="my-proj")
    context = RequestContext("r", "ab" * 16, "cd" * 8, False, None)
    token = logs.request_context.set(context)
    try:
        logging.getLogger("cme.x").error("failed")
        logs.AccessLog("json", "my-proj").write(
            {"method": "GET", "path": "/p"}, "/p", 503, 0.1, context, None
        )
    finally:
        logs.request_context.reset(token)
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["logging.googleapis.com/trace"] for line in lines] == [
        f"projects/my-proj/traces/{'ab' * 16}"
    ] * 2
    assert [line["severity"] for line in lines] == ["ERROR", "ERROR"]


@pytest.mark.parametrize(
    ("path", "status", "severity"),
    [("/health", 200, "INFO"), ("/nowhere", 404, "WARNING"), ("/products?limit=0", 422, "WARNING")],
)
def test_access_line_severity_follows_the_status_class(
    client: TestClient, capsys: pytest.CaptureFixture[str], path: str, status: int, severity: str
) -> None:
    logs.configure("INFO", "json")
    try:
        assert client.get(path).status_code == status
    finally:
        logging.getLogger().handlers.clear()
    (line,) = access_lines(capsys.readouterr().out)
    assert line["severity"] == severity


def test_a_failed_request_is_an_error_line_and_the_error_log_carries_its_trace(
    client: TestClient,
    memory: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(InMemoryProductRepository, "list", broken)
    logs.configure("INFO", "json")
    try:
        response = client.get("/products")
    finally:
        logging.getLogger().handlers.clear()
    assert response.status_code == 500
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (access,) = [line for line in lines if line["logger"] == "cme.access"]
    (error,) = [line for line in lines if line["message"] == "unhandled error"]
    assert access["httpRequest"]["status"] == 500  # type: ignore[index]
    assert access["request_id"] == response.headers["x-request-id"]
    assert access["severity"] == error["severity"] == "ERROR"
    key = "logging.googleapis.com/trace"
    assert error[key] == access[key]
    assert error["request_id"] == access["request_id"]


def test_the_access_log_at_warning_level_keeps_only_failed_requests(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("WARNING", "json")
    try:
        client.get("/health")
        client.get("/nowhere")
    finally:
        logging.getLogger().handlers.clear()
    assert [line["httpRequest"] for line in access_lines(capsys.readouterr().out)] == [
        {
            "requestMethod": "GET",
            "requestUrl": "/nowhere",
            "status": 404,
            "latency": ANY,
            "remoteIp": "testclient",
            "userAgent": "testclient",
        }
    ]


def test_the_access_line_has_the_query_with_secrets_redacted_the_peer_and_the_agent(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "json")
    try:
        client.get(
            "/products?q=lamp&api_key=k-123&limit=5&access_token=t-456",
            headers={"User-Agent": "shop-sync/2.1"},
        )
    finally:
        logging.getLogger().handlers.clear()
    (line,) = access_lines(capsys.readouterr().out)
    request = line["httpRequest"]
    assert request["requestUrl"] == (  # type: ignore[index]
        "/products?q=lamp&api_key=REDACTED&limit=5&access_token=REDACTED"
    )
    assert request["userAgent"] == "shop-sync/2.1"  # type: ignore[index]
    assert request["remoteIp"] == "testclient"  # type: ignore[index]
    assert "k-123" not in json.dumps(line)
    assert "t-456" not in json.dumps(line)


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        (b"", ""),
        (b"q=lamp&cursor=abc&wait=5", "?q=lamp&cursor=abc&wait=5"),
        (b"X-Amz-Signature=abc&Token=x", "?X-Amz-Signature=REDACTED&Token=REDACTED"),
        (b"api%5Fkey=1&pass+word=2", "?api%5Fkey=REDACTED&pass+word=2"),
        (
            b"password=hunter2&pwd=x&client_secret=y",
            "?password=REDACTED&pwd=REDACTED&client_secret=REDACTED",
        ),
        (
            b"session=1&auth=2&jwt=3&credentials=4",
            "?session=REDACTED&auth=REDACTED&jwt=REDACTED&credentials=REDACTED",
        ),
        (b"token&=x&q=%FF", "?token&=x&q=%FF"),
        (b"%74oken=x&q=a+b", "?%74oken=REDACTED&q=a+b"),
    ],
)
def test_credential_looking_query_values_are_redacted(query: bytes, logged: str) -> None:
    assert logs.redacted_query(query) == logged


@pytest.fixture
def console_client(memory: InMemoryDatabase) -> Iterator[TestClient]:
    settings = Settings(database_url="sqlite://", log_format="console")
    container = Container(settings=settings)
    container.database.override(providers.Object(memory))
    with TestClient(create_app(container)) as test_client:
        yield test_client


def test_a_console_access_line_has_the_query_and_the_latency(
    console_client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "console")
    try:
        console_client.get("/products?q=lamp&token=t-1")
    finally:
        logging.getLogger().handlers.clear()
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "cme.access" in line]
    assert re.search(
        r"INFO    cme\.access GET /products\?q=lamp&token=REDACTED 200 \d+\.\dms \[", line
    )


def test_console_lines_escape_control_characters_in_path_and_message(
    console_client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = console_client
    forged = "%0A2026-01-01 00:00:00,000 INFO    cme.access GET /admin 200"
    logs.configure("INFO", "console")
    try:
        client.get(f"/x{forged}")
        logging.getLogger("cme.x").warning("a\rb\x1b[31mc\u2028d")
        try:
            raise ValueError("line one\nline two")
        except ValueError:
            logging.getLogger("cme.x").exception("failed")
    finally:
        logging.getLogger().handlers.clear()
    out = capsys.readouterr().out
    lines = out.splitlines()
    records = [line for line in lines if not line.startswith("  | ") and "httpx" not in line]
    assert len(records) == 3, lines
    assert "/x\\x0a2026-01-01" in records[0]
    assert "WARNING cme.access" in records[0]
    assert records[1].endswith("a\\x0db\\x1b[31mc\\u2028d")
    assert "  | ValueError: line one" in lines
    assert "  | line two" in lines


def test_json_lines_keep_control_characters_inside_their_strings(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "json")
    try:
        client.get("/x%0A%0D%1B")
    finally:
        logging.getLogger().handlers.clear()
    (line,) = access_lines(capsys.readouterr().out)
    assert line["httpRequest"]["requestUrl"] == "/x\n\r\x1b"  # type: ignore[index]


def test_the_start_up_line_names_the_sqlite_file_and_a_missing_folder(
    memory: InMemoryDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    container = Container(settings=Settings(database_url=f"sqlite:///{tmp_path}/no/shop.db"))
    container.database.override(providers.Object(memory))
    with caplog.at_level(logging.INFO, logger="cme"), TestClient(create_app(container)):
        pass
    said = [record.getMessage() for record in caplog.records if record.name == "cme"]
    assert said[:2] == [
        f"starting on the SQLite file {tmp_path}/no/shop.db",
        f"the folder {tmp_path}/no does not exist: create it",
    ]
    assert said[-1] == "stopped"
