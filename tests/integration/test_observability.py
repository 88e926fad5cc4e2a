"""Real uvicorn: refused requests get problem+json, a count and a log line; logs carry traces."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .server import running_cme

API_KEY = "observability-test-key-0123"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def serve(url: str, tmp_path: Path, log_format: str) -> Iterator[tuple[str, Path]]:
    log = tmp_path / f"cme-{log_format}.log"
    env = {
        "DATABASE_URL": url,
        "API_KEY": API_KEY,
        "LOG_FORMAT": log_format,
        "GOOGLE_CLOUD_PROJECT": "proj-1",
        # The sources under test, when they are not the installed ones.
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    with running_cme(env, tmp_path, log) as (base_url, _process):
        yield base_url, log


@pytest.fixture
def server(migrated_postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from serve(migrated_postgres_url, tmp_path, "json")


@pytest.fixture
def console_server(migrated_postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from serve(migrated_postgres_url, tmp_path, "console")


def raw(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One response to a hand-written request, read to its Content-Length: a response the
    server keeps alive never ends in a close, and waiting for one races uvicorn's own
    keep-alive timeout."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := connection.recv(65536)):
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length and (chunk := connection.recv(65536)):
            body += chunk
    return int(status_line.split()[1]), headers, body


def scrape(base_url: str) -> str:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
        return str(response.read().decode())


def counts(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["method"], s.labels["path"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "http_requests"
        for s in family.samples
        if s.name == "http_requests_total"
    }


def json_lines(log: Path, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The log's JSON lines that match, once there are some: a line follows its response."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        found = [line for line in lines if wanted(line)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


REFUSED = {
    "a header without a colon": (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "GET"),
    "a duplicate Content-Length": (
        b"POST /products HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        "POST",
    ),
    "an unknown method": (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", "_OTHER"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_request_the_parser_refuses_gets_problem_json_a_count_and_a_log_line(
    server: tuple[str, Path], case: str
) -> None:
    base_url, log = server
    request, method = REFUSED[case]
    status, headers, body = raw(base_url, request)
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    problem = json.loads(body)
    assert (problem["status"], problem["type"]) == (400, "urn:cme:problem:bad-request")
    assert counts(scrape(base_url))[method, "unmatched", "400"] == 1
    (line,) = json_lines(log, lambda x: x.get("httpRequest", {}).get("status") == 400)
    assert line["severity"] == "WARNING"
    assert line["route"] == "unmatched"
    assert line["request_id"] == headers["x-request-id"]


def test_a_head_too_large_is_431_counted_and_logged(server: tuple[str, Path]) -> None:
    base_url, log = server
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    status, headers, _ = raw(base_url, request)
    assert status == 431
    assert headers["content-type"] == "application/problem+json"
    assert counts(scrape(base_url))["GET", "unmatched", "431"] == 1
    refused = json_lines(log, lambda x: x.get("route") == "unmatched")
    assert [x["severity"] for x in refused] == ["WARNING"]


def test_every_line_of_a_request_carries_the_callers_trace_in_cloud_loggings_form(
    server: tuple[str, Path],
) -> None:
    base_url, log = server
    request = urllib.request.Request(
        f"{base_url}/products",
        headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        data=b"{}",
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
    (line,) = json_lines(log, lambda x: x.get("route") == "/products")
    assert line["logging.googleapis.com/trace"] == f"projects/proj-1/traces/{TRACE_ID}"
    assert line["logging.googleapis.com/trace_sampled"] is True
    assert line["severity"] == "WARNING"
    assert line["route"] == "/products"
    assert counts(scrape(base_url))["POST", "/products", "401"] == 1


def test_a_newline_in_the_path_cannot_forge_a_console_log_line(
    console_server: tuple[str, Path],
) -> None:
    base_url, log = console_server
    forged = "%0A2026-01-01%2000:00:00,000%20INFO%20%20%20%20cme.access%20GET%20/admin%20200"
    status, _, _ = raw(base_url, f"GET /x{forged} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 404
    time.sleep(0.5)  # the access line follows the response
    lines = log.read_text().splitlines()
    assert not any(line.startswith("2026-01-01") for line in lines)
    (access,) = [line for line in lines if "cme.access" in line and "/x" in line]
    assert "WARNING cme.access GET /x\\x0a2026-01-01 00:00:00,000 INFO" in access


def test_promtool_finds_nothing_wrong_in_the_metrics(server: tuple[str, Path]) -> None:
    base_url, _ = server
    raw(base_url, REFUSED["an unknown method"][0])
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make tools` (Debian's prometheus package)")
    text = scrape(base_url)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.replace("# TYPE http_requests_total counter", "# TYPE http_requests_total oops"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert broken.returncode != 0
