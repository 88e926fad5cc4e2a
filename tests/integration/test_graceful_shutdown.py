"""SIGTERM during a slow request: the request completes, new ones are refused, exit status 0."""

import signal
import socket
import threading
import time
from pathlib import Path

import httpx2 as httpx
import psycopg

from tests.integration.server import running_cme

API_KEY = "stop-key-0123456789abcdef"
LAMP = {"sku": "STOP-1", "name": "Lamp", "price": "1.00", "quantity": 1}


def accepts_connections(base_url: str) -> bool:
    host, port = base_url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def test_sigterm_lets_the_in_flight_request_finish_and_refuses_new_ones(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": empty_postgres_url, "API_KEY": API_KEY}
    headers = {"X-API-Key": API_KEY}
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, process):
        url = (
            base_url
            + httpx.post(f"{base_url}/products", json=LAMP, headers=headers).headers["location"]
        )
        outcome: dict[str, httpx.Response] = {}
        # A transaction that holds the product's row makes the PUT below genuinely slow.
        with (
            psycopg.connect(empty_postgres_url) as blocker,
            psycopg.connect(empty_postgres_url, autocommit=True) as observer,
        ):
            blocker.execute("SELECT 1 FROM products WHERE sku = 'STOP-1' FOR UPDATE")
            slow = threading.Thread(
                target=lambda: outcome.update(
                    put=httpx.put(url, json={**LAMP, "quantity": 2}, headers=headers, timeout=20)
                )
            )
            slow.start()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                # Its own autocommit connection: pg_stat_activity is frozen inside a transaction.
                waiting = observer.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query LIKE '%UPDATE products%'"
                ).fetchone()
                if waiting == (1,):
                    break
                time.sleep(0.02)
            else:
                raise AssertionError("the PUT never reached the database")
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 3
            while accepts_connections(base_url) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not accepts_connections(base_url), "still accepting after SIGTERM"
            assert process.poll() is None, "exited before the in-flight request finished"
        # The blocker's transaction has ended: the PUT may proceed.
        slow.join(timeout=10)
        assert outcome["put"].status_code == 200
        assert outcome["put"].json()["quantity"] == 2
        assert process.wait(timeout=10) == 0


def test_with_a_drain_period_readiness_turns_503_first_while_requests_are_still_served(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": empty_postgres_url, "SHUTDOWN_DRAIN_SECONDS": "2"}
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, process):
        assert httpx.get(f"{base_url}/db-check").status_code == 200
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        readiness = httpx.get(f"{base_url}/db-check")
        assert readiness.status_code == 503
        assert readiness.json()["type"] == "urn:cme:problem:shutting-down"
        assert httpx.get(f"{base_url}/health").status_code == 200
        assert httpx.get(f"{base_url}/products").status_code == 200
        assert process.wait(timeout=10) == 0
    assert not accepts_connections(base_url)
