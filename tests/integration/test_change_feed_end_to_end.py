"""The change feed over real HTTP on PostgreSQL with two uvicorn workers: the guarantees."""

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest

from tests.integration.server import CME, running_cme

API_KEY = "feed-key-0123456789abcdef"
AUTH = {"X-API-Key": API_KEY}
MERGE_PATCH = {**AUTH, "Content-Type": "application/merge-patch+json"}
FEED = "/products/changes"


def lamp(sku: str, quantity: int = 1) -> dict[str, Any]:
    return {"sku": sku, "name": "Lamp", "price": "1.00", "quantity": quantity}


@pytest.fixture
def served(
    empty_postgres_url: str, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    env = {"DATABASE_URL": empty_postgres_url, "API_KEY": API_KEY, "LOG_LEVEL": "WARNING"}
    with running_cme(env, tmp_path, tmp_path / "cme.log", "--workers", "2") as server:
        yield server


@pytest.fixture
def base_url(served: tuple[str, subprocess.Popen[bytes]]) -> str:
    return served[0]


def listeners(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cme-listener'"
            " AND datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_consumer_sees_every_committed_event_once_in_order_while_writers_race(
    base_url: str, empty_postgres_url: str
) -> None:
    deadline = time.monotonic() + 5
    while listeners(empty_postgres_url) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listeners(empty_postgres_url) == 2, "both workers listen for commits"

    def stored() -> int:
        with psycopg.connect(empty_postgres_url) as db:
            row = db.execute("SELECT count(*) FROM product_changes").fetchone()
        assert row is not None
        return int(row[0])

    race_and_check(base_url, stored)


def test_on_sqlite_too_one_writer_at_a_time_makes_insert_order_the_feed_order(
    tmp_path: Path,
) -> None:
    """Two workers on one SQLite file: ids serve as positions because writers serialise."""
    url = f"sqlite:///{tmp_path / 'feed.db'}"
    env = {"DATABASE_URL": url, "API_KEY": API_KEY, "LOG_LEVEL": "WARNING"}
    inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH")}
    subprocess.run([CME, "migrate"], env={**inherited, **env}, check=True, timeout=60)

    def stored() -> int:
        with sqlite3.connect(tmp_path / "feed.db") as db:
            (count,) = db.execute("SELECT count(*) FROM product_changes").fetchone()
        return int(count)

    with running_cme(env, tmp_path, tmp_path / "cme.log", "--workers", "2") as (base_url, _):
        race_and_check(base_url, stored, writers=6, steps=25)


def race_and_check(
    base_url: str, stored: Callable[[], int], writers: int = 10, steps: int = 40
) -> None:
    """Writers race on four hot products while three consumers follow the feed; then check."""
    committed: list[tuple[str, str, int | None, Any]] = []  # (type, id, version, body)
    for n in range(4):
        body = httpx.post(f"{base_url}/products", json=lamp(f"HOT-{n}"), headers=AUTH).json()
        committed.append(("product.created", body["id"], 1, body))
    hot = {body["id"]: body["sku"] for _, _, _, body in committed}
    seen: list[list[dict[str, Any]]] = [[], [], []]
    writing = True

    async def writer(n: int) -> None:
        rng = random.Random(n)
        mine: list[str] = []
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            for step in range(steps):
                roll, target = rng.random(), rng.choice(list(hot))
                if roll < 0.25:  # PUT without If-Match: may wait on another writer's row lock
                    answer = await http.put(
                        f"/products/{target}", json=lamp(hot[target], step), headers=AUTH
                    )
                    if answer.status_code == 200:
                        body = answer.json()
                        committed.append(("product.updated", target, body["version"], body))
                elif roll < 0.45:
                    answer = await http.patch(
                        f"/products/{target}",
                        content=f'{{"quantity": {step}}}'.encode(),
                        headers=MERGE_PATCH,
                    )
                    if answer.status_code == 200:
                        body = answer.json()
                        committed.append(("product.updated", target, body["version"], body))
                elif roll < 0.6:  # a sale or a restock; a sale of what is not there is a 409
                    answer = await http.post(
                        f"/products/{target}/stock-adjustments",
                        json={"delta": rng.choice((-1, 2)), "reason": "sale"},
                        headers=AUTH,
                    )
                    assert answer.status_code in (201, 409), answer.text
                    if answer.status_code == 201:
                        entry = answer.json()
                        # The event carries the product; the entry says its quantity and version.
                        committed.append(
                            ("product.stock_adjusted", target, entry["version_after"], entry)
                        )
                elif roll < 0.7:  # a small upsert: a hot product replaced, a new one created
                    answer = await http.post(
                        "/products/batch",
                        json={
                            "mode": "upsert",
                            "products": [lamp(hot[target], step), lamp(f"B{n}-{step}")],
                        },
                        headers=AUTH,
                    )
                    assert answer.status_code == 200, answer.text
                    replaced, created = (item["product"] for item in answer.json()["items"])
                    committed.append(("product.updated", target, replaced["version"], replaced))
                    committed.append(("product.created", created["id"], 1, created))
                    mine.append(created["id"])
                elif roll < 0.88 or not mine:
                    # With a key the create is a transaction: BEGIN, the key, the product and
                    # its event, then COMMIT a round trip later, a wide window for a late commit.
                    answer = await http.post(
                        "/products",
                        json=lamp(f"W{n}-{step}"),
                        headers={**AUTH, "Idempotency-Key": f"w{n}-{step}"},
                    )
                    assert answer.status_code == 201, answer.text
                    body = answer.json()
                    mine.append(body["id"])
                    committed.append(("product.created", body["id"], 1, body))
                else:
                    doomed = mine.pop(rng.randrange(len(mine)))
                    answer = await http.delete(f"/products/{doomed}", headers=AUTH)
                    assert answer.status_code == 204, answer.text
                    committed.append(("product.deleted", doomed, None, None))

    async def consumer(events: list[dict[str, Any]]) -> None:
        """Follows next_cursor as fast as it can while the writers run, then waits for more."""
        cursor = None
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            while True:
                still_writing = writing
                params: dict[str, Any] = {"limit": 50, "wait": 0 if still_writing else 1}
                if cursor is not None:
                    params["cursor"] = cursor
                page = (await http.get(FEED, params=params)).json()
                events.extend(page["items"])
                cursor = page["next_cursor"]
                if not page["items"] and not still_writing:
                    return

    async def race() -> None:
        nonlocal writing
        reading = [asyncio.create_task(consumer(events)) for events in seen]
        await asyncio.gather(*(writer(n) for n in range(writers)))
        writing = False
        await asyncio.gather(*reading)

    asyncio.run(race())

    # Every consumer saw the same events in the same order, each once and without a gap: the
    # sequences are 1..N, N being every event in the table.
    assert seen[0] == seen[1] == seen[2]
    events = seen[0]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert stored() == len(events)
    # Every write that answered success is there, with the state it answered; nothing else is.
    # (A delete's version is checked below: the product's last version plus one.)
    assert sorted((t, i) for t, i, _, _ in committed) == sorted(
        (e["type"], e["product_id"]) for e in events
    )
    answered = {(i, v): body for _, i, v, body in committed if v is not None}
    for event in events:
        body = answered.get((event["product_id"], event["version"]))
        if event["type"] == "product.stock_adjusted":
            assert body is not None
            assert event["product"]["quantity"] == body["quantity_after"]
            assert event["product"]["version"] == body["version_after"]
        elif event["type"] != "product.deleted":
            # The answer adds what reservations leave available; an event holds no such thing.
            assert body is not None
            assert event["product"] == {k: v for k, v in body.items() if k != "available"}
    kinds = {e["type"] for e in events}
    assert kinds == {
        "product.created",
        "product.updated",
        "product.stock_adjusted",
        "product.deleted",
    }, "every kind of write raced"
    # Each product's events in version order: 1, 2, 3, ... (a delete is the last plus one).
    versions: dict[str, list[int]] = defaultdict(list)
    for event in events:
        versions[event["product_id"]].append(event["version"])
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    assert min(len(versions[h]) for h in hot) > 5, "every hot product was written many times"


def in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        outcome["response"] = call()
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_waiting_request_is_answered_as_soon_as_another_worker_commits(base_url: str) -> None:
    latest = httpx.get(f"{base_url}{FEED}", params={"cursor": "latest"}).json()["next_cursor"]
    waiters = [
        in_background(
            lambda: httpx.get(
                f"{base_url}{FEED}", params={"cursor": latest, "wait": 20}, timeout=30
            )
        )
        for _ in range(4)  # on two workers: some wait on the one that does not take the write
    ]
    time.sleep(1)
    assert all(thread.is_alive() for thread, _ in waiters)
    written_at = time.monotonic()
    created = httpx.post(f"{base_url}/products", json=lamp("WAKE-1"), headers=AUTH).json()

    for thread, outcome in waiters:
        thread.join(10)
        assert outcome["response"].status_code == 200
        assert [e["product_id"] for e in outcome["response"].json()["items"]] == [created["id"]]
    assert time.monotonic() - written_at < 2, "answered at the commit, not at the end of the wait"


def test_shutdown_ends_waiting_requests_at_once_with_what_they_have(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base_url, process = served
    latest = httpx.get(f"{base_url}{FEED}", params={"cursor": "latest"}).json()["next_cursor"]
    waiters = [
        in_background(
            lambda: httpx.get(
                f"{base_url}{FEED}", params={"cursor": latest, "wait": 30}, timeout=40
            )
        )
        for _ in range(4)
    ]
    time.sleep(1)
    stopped_at = time.monotonic()
    process.send_signal(signal.SIGTERM)

    for thread, outcome in waiters:
        thread.join(10)
        assert outcome["response"].status_code == 200
        assert outcome["response"].json() == {"items": [], "next_cursor": latest}
    assert process.wait(10) == 0
    assert time.monotonic() - stopped_at < 5, "the waits did not hold the shutdown up"


def test_a_create_that_rolls_back_leaves_no_event(base_url: str) -> None:
    first = httpx.post(f"{base_url}/products", json=lamp("ONCE"), headers=AUTH)
    # A transaction: the idempotency key goes in, then the product's duplicate sku fails it.
    again = httpx.post(
        f"{base_url}/products", json=lamp("ONCE"), headers={**AUTH, "Idempotency-Key": "k-1"}
    )

    page = httpx.get(f"{base_url}{FEED}").json()

    assert (first.status_code, again.status_code) == (201, 409)
    assert [e["product_id"] for e in page["items"]] == [first.json()["id"]]


def test_after_pruning_an_old_cursor_is_gone_and_a_new_one_is_not(
    base_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    start = httpx.get(f"{base_url}{FEED}", params={"cursor": "latest"}).json()["next_cursor"]
    for n in range(3):
        httpx.post(f"{base_url}/products", json=lamp(f"OLD-{n}"), headers=AUTH)
    caught_up = httpx.get(f"{base_url}{FEED}").json()["next_cursor"]
    fresh = httpx.post(f"{base_url}/products", json=lamp("FRESH"), headers=AUTH).json()
    with psycopg.connect(empty_postgres_url, autocommit=True) as db:
        db.execute(
            "UPDATE product_changes SET occurred_at = occurred_at - interval '8 days'"
            " WHERE product_id <> %s",
            (fresh["id"],),
        )
    pruned = subprocess.run(
        [CME, "prune-changes"],
        # PYTHONPATH passes through, so a checkout run against a shared venv runs its own code.
        env={
            "DATABASE_URL": empty_postgres_url,
            "PATH": "/usr/bin:/bin",
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    gone = httpx.get(f"{base_url}{FEED}", params={"cursor": start})
    kept = httpx.get(f"{base_url}{FEED}", params={"cursor": caught_up}).json()
    from_start = httpx.get(f"{base_url}{FEED}").json()

    assert pruned.stdout == "cme: removed 3 change events\n"
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["type"] == "urn:cme:problem:changes-pruned"
    assert "snapshot" in gone.json()["detail"]
    assert [e["product_id"] for e in kept["items"]] == [fresh["id"]]
    assert from_start["items"] == kept["items"]


def test_a_listener_cut_off_by_the_server_comes_back_and_waits_still_end_early(
    base_url: str, empty_postgres_url: str
) -> None:
    deadline = time.monotonic() + 5
    while listeners(empty_postgres_url) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    with psycopg.connect(empty_postgres_url, autocommit=True) as db:
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'cme-listener' AND datname = current_database()"
        )
    latest = httpx.get(f"{base_url}{FEED}", params={"cursor": "latest"}).json()["next_cursor"]
    thread, outcome = in_background(
        lambda: httpx.get(f"{base_url}{FEED}", params={"cursor": latest, "wait": 20}, timeout=30)
    )
    time.sleep(0.3)
    created = httpx.post(f"{base_url}/products", json=lamp("CUT-1"), headers=AUTH).json()
    thread.join(10)

    assert [e["product_id"] for e in outcome["response"].json()["items"]] == [created["id"]]
    assert outcome["seconds"] < 3
    deadline = time.monotonic() + 5  # the listeners reconnect after a second
    while listeners(empty_postgres_url) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listeners(empty_postgres_url) == 2


def test_a_burst_of_writes_is_announced_to_other_workers_a_few_times_not_once_each(
    base_url: str, empty_postgres_url: str
) -> None:
    """Writers send no NOTIFY; each worker sends one per 50 ms at most after its commits."""
    writes = 120
    with psycopg.connect(empty_postgres_url, autocommit=True) as listening:
        listening.execute("LISTEN cme_product_changes")

        async def burst() -> None:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                for start in range(0, writes, 12):
                    answers = await asyncio.gather(
                        *(
                            http.post("/products", json=lamp(f"BURST-{n}"), headers=AUTH)
                            for n in range(start, start + 12)
                        )
                    )
                    assert all(a.status_code == 201 for a in answers)

        started = time.monotonic()
        asyncio.run(burst())
        seconds = time.monotonic() - started
        heard = list(listening.notifies(timeout=0.5))

    assert heard, "the other workers hear of the burst"
    # Two workers, each at most once per 50 ms window (plus the one that ends its burst).
    assert len(heard) <= 2 * (seconds / 0.05 + 2)
    assert len(heard) < writes
