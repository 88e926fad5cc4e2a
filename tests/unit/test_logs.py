"""Log lines are JSON that Cloud Logging understands, and every line of a request has its id."""

import json
import logging

import pytest
from starlette.testclient import TestClient

from cme_entrypoints import logs

from .conftest import API_KEY


def test_access_lines_carry_severity_request_id_subject_and_trace(
    writer: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "json")
    try:
        writer.get("/health", headers={"X-Request-ID": "req-1", "X-Cloud-Trace-Context": "t/1"})
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
    }
    assert str(health["httpRequest"]["latency"]).endswith("s")  # type: ignore[index]
    assert health["logging.googleapis.com/trace"] == "t"
    assert str(create["subject"]).startswith("api-key:")
    assert API_KEY not in json.dumps(lines)
    assert "subject" not in health


def test_lines_logged_while_serving_a_request_carry_its_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("INFO", "json")
    token = logs.request_id.set("inner-7")
    try:
        logging.getLogger("cme.anything").warning("deep inside a use case")
    finally:
        logs.request_id.reset(token)
        logging.getLogger().handlers.clear()
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (line["request_id"], line["severity"], line["message"]) == (
        "inner-7",
        "WARNING",
        "deep inside a use case",
    )


def test_console_format_is_one_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "console")
    try:
        logging.getLogger("cme.x").info("hello %s", "there")
    finally:
        logging.getLogger().handlers.clear()
    out = capsys.readouterr().out.strip()
    assert out.endswith("INFO    cme.x hello there")
