"""scripts/smoke.sh against a stand-in HTTP server on loopback: its retry and failure logic only."""

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

RunTool = Callable[..., subprocess.CompletedProcess[str]]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke.sh"
# Status per path; a list is consumed one answer per request, its last answer then repeats.
Plan = dict[str, int | list[int]]


class StandIn(ThreadingHTTPServer):
    def __init__(self, plan: Plan, headers: dict[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.plan = {path: list(s) if isinstance(s, list) else [s] for path, s in plan.items()}
        self.headers = headers or {}
        self.hits: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        answers = self.server.plan.get(self.path, [404])
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        body = b'{"status": "ok"}' if status == 200 else b'{"title": "Service Unavailable"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in self.server.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def serve() -> Iterator[Callable[..., StandIn]]:
    servers: list[StandIn] = []

    def start(plan: Plan, headers: dict[str, str] | None = None) -> StandIn:
        server = StandIn(plan, headers)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def smoke(
    *args: str, timeout: int = 3, require_header: str | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {"PATH": os.environ["PATH"], "SMOKE_TIMEOUT": str(timeout), "SMOKE_INTERVAL": "1"}
    if require_header is not None:
        env["SMOKE_REQUIRE_HEADER"] = require_header
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=30
    )
    return result, time.monotonic() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_healthy_service_passes_both_checks(serve: Callable[..., StandIn]):
    server = serve({"/health": 200, "/db-check": 200})
    result, _ = smoke(server.url)
    assert result.returncode == 0, result.stderr
    assert server.hits == ["/health", "/db-check"]
    assert "healthy" in result.stdout


def test_database_down_fails_within_the_deadline_naming_the_check(
    serve: Callable[..., StandIn],
):
    server = serve({"/health": 200, "/db-check": 503})
    result, elapsed = smoke(server.url, timeout=3)
    assert result.returncode == 1
    assert "/db-check answered 503" in result.stderr
    assert "Service Unavailable" in result.stderr
    assert server.hits.count("/db-check") >= 2, "retried before giving up"
    assert elapsed < 3 + 3


def test_unreachable_service_fails_within_the_deadline():
    result, elapsed = smoke(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert result.returncode == 1
    assert "/health answered 000" in result.stderr
    assert elapsed < 2 + 3


def test_service_that_becomes_ready_during_the_deadline_passes(
    serve: Callable[..., StandIn],
):
    server = serve({"/health": [503, 200], "/db-check": [503, 503, 200]})
    result, _ = smoke(server.url, timeout=20)
    assert result.returncode == 0, result.stderr
    assert server.hits.count("/db-check") == 3


HSTS = {"Strict-Transport-Security": "max-age=31536000"}


def test_a_required_header_present_on_both_answers_passes(serve: Callable[..., StandIn]):
    server = serve({"/health": 200, "/db-check": 200}, HSTS)
    result, _ = smoke(server.url, require_header="strict-transport-security")
    assert result.returncode == 0, result.stderr
    assert "200 with strict-transport-security" in result.stdout


def test_a_200_without_the_required_header_fails_naming_it(serve: Callable[..., StandIn]):
    server = serve({"/health": 200, "/db-check": 200})
    result, elapsed = smoke(server.url, timeout=2, require_header="Strict-Transport-Security")
    assert result.returncode == 1
    assert "/health answered 200 without Strict-Transport-Security" in result.stderr
    assert "want 200 with Strict-Transport-Security" in result.stderr
    assert server.hits.count("/health") >= 2, "retried: a route may still be propagating"
    assert elapsed < 2 + 3


def test_a_required_header_must_be_a_header_name(serve: Callable[..., StandIn]):
    server = serve({"/health": 200, "/db-check": 200}, HSTS)
    result, _ = smoke(server.url, require_header="Strict-Transport-Security: max-age")
    assert result.returncode == 2
    assert server.hits == []


@pytest.mark.parametrize("args", [(), ("not-a-url",), ("http://a", "http://b")])
def test_bad_usage_exits_2(args: tuple[str, ...]):
    result, _ = smoke(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_smoke_script_is_strict_executable_bash():
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert os.access(SCRIPT, os.X_OK)


def test_smoke_script_is_shellcheck_clean(run_tool: RunTool):
    result = run_tool("shellcheck", SCRIPT)
    assert result.returncode == 0, result.stdout


def test_shellcheck_flags_an_unquoted_expansion(run_tool: RunTool, tmp_path: Path):
    broken = tmp_path / "smoke.sh"
    shutil.copy(SCRIPT, broken)
    broken.write_text(broken.read_text() + "echo $base_url\n")
    result = run_tool("shellcheck", broken)
    assert result.returncode != 0
    assert "SC2086" in result.stdout
