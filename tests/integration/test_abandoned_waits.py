"""Long polls against a real `cme serve`: abandoned waits end at once, live ones are bounded, and
/health answers 200 throughout, on PostgreSQL and on SQLite."""

import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.integration.server import CME, running_cme

LONG_POLL = b"GET /products/changes?wait=30 HTTP/1.1\r\nHost: cme\r\n\r\n"


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("empty_postgres_url"))
    url = f"sqlite:///{tmp_path / 'waits.db'}"
    inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH")}
    subprocess.run([CME, "migrate"], env={**inherited, "DATABASE_URL": url}, check=True, timeout=60)
    return url


@contextmanager
def serving(url: str, tmp_path: Path, **env: str) -> Iterator[tuple[str, int]]:
    settings = {"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "RATE_LIMIT_READS": "0", **env}
    with running_cme(settings, tmp_path, tmp_path / "cme.log") as (base_url, _):
        yield base_url, int(base_url.rsplit(":", 1)[1])


def health(base_url: str) -> int:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def abandon(port: int, count: int) -> None:
    """`count` long polls of 30 s whose clients close the socket as soon as they have asked."""
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(LONG_POLL)


def hold(
    port: int, count: int, address: str = "127.0.0.1"
) -> tuple[list[socket.socket], Counter[int]]:
    """`count` live long polls from `address`: the statuses of those answered at once (each a
    problem with Retry-After), and every socket, the admitted ones still waiting."""
    held, refused = [], Counter[int]()
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), source_address=(address, 0))
        client.sendall(LONG_POLL)
        held.append(client)
    for client in held:
        client.settimeout(0.5)
        try:
            head = client.recv(65536).lower()
        except TimeoutError:
            continue
        assert b"application/problem+json" in head, head
        assert b"retry-after: 1\r\n" in head, head
        refused[int(head.split(b" ", 2)[1])] += 1
    return held, refused


def test_a_burst_of_1010_abandoned_waits_never_takes_health_away(
    store_url: str, tmp_path: Path
) -> None:
    """Bounds wide enough to admit every wait: only ending each at once keeps the worker free."""
    with serving(
        store_url, tmp_path, FEED_WAITS_PER_CALLER="1000", FEED_WAITS_PER_WORKER="999"
    ) as (base_url, port):
        burst = threading.Thread(target=abandon, args=(port, 1010))
        seen: Counter[int] = Counter()
        burst.start()
        while burst.is_alive():
            seen[health(base_url)] += 1
        burst.join()
        for _ in range(20):  # after it, while waits that missed their client's leaving would hold
            seen[health(base_url)] += 1

        assert set(seen) == {200}, seen
        started = time.monotonic()
        with urllib.request.urlopen(f"{base_url}/products/changes?wait=1") as page:
            assert page.status == 200
        assert time.monotonic() - started < 3


def test_live_waits_are_bounded_per_caller_and_per_worker_and_health_stays_up(
    store_url: str, tmp_path: Path
) -> None:
    with serving(store_url, tmp_path, FEED_WAITS_PER_CALLER="5", FEED_WAITS_PER_WORKER="8") as (
        base_url,
        port,
    ):
        first, first_refused = hold(port, 40)
        second, second_refused = hold(port, 10, "127.0.0.2")
        third, third_refused = hold(port, 1, "127.0.0.3")
        try:
            assert first_refused == {429: 35}, "one caller waits at most five times at once"
            assert second_refused == {503: 7}, "the worker holds at most eight"
            assert third_refused == {503: 1}
            assert health(base_url) == 200
        finally:
            for client in (*first, *second, *third):
                client.close()
        # The slots come back with the clients' leaving, once the worker has read their FINs.
        time.sleep(0.5)
        again, again_refused = hold(port, 8, "127.0.0.4")
        with closing(again[0]):
            assert again_refused == {429: 3}
            for client in again[1:]:
                client.close()
