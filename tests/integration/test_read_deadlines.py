"""Silent, slow and too many connections against a real `cme serve`: closed in time, bounded."""

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.integration.server import running_cme

API_KEY = "e2e-deadline-key-0123456789"


@pytest.fixture
def port(empty_postgres_url: str, tmp_path: Path) -> Iterator[int]:
    env = {
        "DATABASE_URL": empty_postgres_url,
        "API_KEY": API_KEY,
        "HEADER_TIMEOUT_SECONDS": "1",
        "BODY_TIMEOUT_SECONDS": "1",
    }
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _):
        yield int(base_url.rsplit(":", 1)[1])


def answer_and_seconds(port: int, *parts: bytes, pause: float = 0.0) -> tuple[bytes, float]:
    """Send the parts (pausing between them), then read until the server closes."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        for part in parts:
            try:
                connection.sendall(part)
            except OSError:
                break  # already closed by the server: what it answered is still to be read
            time.sleep(pause)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer, time.monotonic() - started


def assert_408(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"content-type: application/problem+json" in head
    assert b"x-content-type-options: nosniff" in head
    assert b'"status":408' in body


def test_a_connection_that_sends_nothing_gets_408_and_is_closed_within_the_timeout(
    port: int,
) -> None:
    answer, seconds = answer_and_seconds(port)
    assert_408(answer)
    assert 0.9 < seconds < 3


def test_half_a_header_block_gets_408_and_is_closed_within_the_timeout(port: int) -> None:
    answer, seconds = answer_and_seconds(port, b"GET /products HTTP/1.1\r\nHost: x\r\n")
    assert_408(answer)
    assert seconds < 3


def test_a_head_trickled_a_byte_at_a_time_is_cut_off_at_the_deadline_not_kept_alive(
    port: int,
) -> None:
    trickle = [bytes([b]) for b in b"GET /products HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60]
    answer, seconds = answer_and_seconds(port, *trickle, pause=0.1)
    assert_408(answer)
    assert seconds < 3


def test_half_a_body_gets_408_is_closed_and_writes_nothing(port: int) -> None:
    head = (
        b"POST /products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-API-Key: " + API_KEY.encode() + b"\r\nContent-Length: 200\r\n\r\n"
    )
    answer, seconds = answer_and_seconds(port, head + b'{"sku": "SLOW-1", "na')
    assert_408(answer)
    assert seconds < 3
    listed = httpx.get(f"http://127.0.0.1:{port}/products", timeout=5).json()
    assert listed["items"] == []


def test_a_prompt_client_is_served_and_its_keep_alive_connection_reused(port: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for _ in range(3):
            assert client.get("/products").status_code == 200
            time.sleep(0.5)  # idle between requests is keep-alive's (5 s), not the head's


def test_past_max_connections_a_connection_gets_503_at_once_and_room_comes_back(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": empty_postgres_url, "MAX_CONNECTIONS": "3"}
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _):
        port = int(base_url.rsplit(":", 1)[1])
        time.sleep(0.2)  # the readiness probe's connection is gone
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        try:
            time.sleep(0.2)
            answer, seconds = answer_and_seconds(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _, _ = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 "), answer
            assert b"retry-after: 1" in head
            assert b"application/problem+json" in head
            assert seconds < 1
        finally:
            for connection in held:
                connection.close()
        time.sleep(0.2)
        assert httpx.get(f"{base_url}/health", timeout=5).status_code == 200
