"""Webhooks over real HTTP: a real `cme serve`, a receiver on loopback, SQLite and PostgreSQL."""

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest

from cme_adapters.sql import migrate
from tests.integration.receiver import receiving
from tests.integration.server import free_port, running_cme

API_KEY = "webhook-suite-key-0123456789abcdef"
AUTH = {"X-API-Key": API_KEY}
LAMP = {"sku": "HOOK-1", "name": "Desk lamp", "price": "19.99", "quantity": 5}


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_WRITES": "0",
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        **extra,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cme.db'}"
        asyncio.run(migrate.upgrade(url))
        return url
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


@pytest.fixture
def postgres_service(empty_postgres_url: str, tmp_path: Path) -> Iterator[str]:
    with running_cme(service_env(empty_postgres_url), tmp_path, tmp_path / "cme.log") as (url, _):
        yield url


def subscribe(base_url: str, url: str, **fields: Any) -> dict[str, Any]:
    response = httpx.post(f"{base_url}/webhooks", json={"url": url, **fields}, headers=AUTH)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def write_sequence(base_url: str, sku: str = "HOOK-1") -> None:
    """A create, an update, a stock adjustment and a delete of one product."""
    created = httpx.post(f"{base_url}/products", json={**LAMP, "sku": sku}, headers=AUTH)
    assert created.status_code == 201, created.text
    path = f"{base_url}/products/{created.json()['id']}"
    etag = {"If-Match": created.headers["ETag"]}
    patched = httpx.patch(path, json={"name": "Lamp"}, headers={**AUTH, **etag})
    assert patched.status_code == 200, patched.text
    adjusted = httpx.post(
        f"{path}/stock-adjustments", json={"delta": -2, "reason": "sale"}, headers=AUTH
    )
    assert adjusted.status_code == 201, adjusted.text
    assert httpx.delete(path, headers=AUTH).status_code == 204


def feed_items(base_url: str) -> list[Any]:
    items: list[Any] = httpx.get(f"{base_url}/products/changes").json()["items"]
    return items


def test_every_change_of_a_sequence_arrives_once_signed_and_equal_to_the_feed_in_order(
    database_url: str, tmp_path: Path
) -> None:
    with (
        running_cme(service_env(database_url), tmp_path, tmp_path / "cme.log") as (base_url, _),
        receiving() as receiver,
    ):
        hook = subscribe(base_url, receiver.url)
        write_sequence(base_url)
        arrivals = receiver.wait_for(4)
        time.sleep(1.5)  # a second delivery of anything would have come by now
        assert len(receiver.arrivals) == 4
        events = [a.verified(hook["secret"]) for a in arrivals]
        assert events == feed_items(base_url)
        assert [a.body for a in arrivals] == [orjson.dumps(e) for e in feed_items(base_url)]
        assert [e["type"] for e in events] == [
            "product.created",
            "product.updated",
            "product.stock_adjusted",
            "product.deleted",
        ]
        assert len({a.headers["webhook-id"] for a in arrivals}) == 4
        assert all(a.headers["content-type"] == "application/json" for a in arrivals)
        log = httpx.get(f"{base_url}/webhooks/{hook['id']}/deliveries", headers=AUTH).json()
        assert [d["status_code"] for d in log["items"]] == [204] * 4
        assert [d["event_sequence"] for d in log["items"]] == [4, 3, 2, 1]


def test_events_before_the_subscription_and_of_unwanted_types_are_not_sent(
    postgres_service: str,
) -> None:
    write_sequence(postgres_service, "BEFORE")
    with receiving() as receiver:
        hook = subscribe(postgres_service, receiver.url, events=["product.deleted"])
        write_sequence(postgres_service, "AFTER")
        arrivals = receiver.wait_for(1)
        time.sleep(1.5)
        assert len(receiver.arrivals) == 1
        event = arrivals[0].verified(hook["secret"])
        assert event["type"] == "product.deleted"
        assert event == feed_items(postgres_service)[-1]


def test_a_receiver_failing_three_times_gets_one_webhook_id_four_times_and_nothing_after_it(
    postgres_service: str,
) -> None:
    with receiving() as receiver:
        receiver.script = [500, 503, 400]
        hook = subscribe(postgres_service, receiver.url)
        created = httpx.post(f"{postgres_service}/products", json=LAMP, headers=AUTH)
        assert created.status_code == 201
        second = httpx.post(
            f"{postgres_service}/products", json={**LAMP, "sku": "HOOK-2"}, headers=AUTH
        )
        assert second.status_code == 201
        arrivals = receiver.wait_for(5, timeout=30)
        ids = [a.headers["webhook-id"] for a in arrivals]
        assert ids[:4] == [ids[0]] * 4
        assert ids[4] != ids[0]
        assert [a.verified(hook["secret"])["product_id"] for a in arrivals[3:]] == [
            created.json()["id"],
            second.json()["id"],
        ]
        # Backoff from 1 s, doubling: the retries came no sooner than 1, 2 and 4 s apart.
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(arrivals[:4])]
        assert [round(g) >= want for g, want in zip(gaps, (1, 2, 4), strict=True)] == [True] * 3
        log = httpx.get(f"{postgres_service}/webhooks/{hook['id']}/deliveries", headers=AUTH)
        statuses = [d["status_code"] for d in reversed(log.json()["items"])]
        assert statuses == [500, 503, 400, 204, 204]


def test_writes_made_while_the_receiver_is_down_arrive_once_each_in_order_after_a_restart(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(empty_postgres_url)
    with running_cme(env, tmp_path, tmp_path / "first.log") as (base_url, _):
        hook = subscribe(base_url, f"http://127.0.0.1:{port}/hooks")
        for n in range(20):
            sku = f"DOWN-{n}"
            response = httpx.post(f"{base_url}/products", json={**LAMP, "sku": sku}, headers=AUTH)
            assert response.status_code == 201
        expected = feed_items(base_url)
        time.sleep(1)  # an attempt or two fail on the closed port meanwhile
    with (
        receiving(port) as receiver,
        running_cme(env, tmp_path, tmp_path / "second.log", "--workers", "2") as (base_url, _),
    ):
        arrivals = receiver.wait_for(20, timeout=40)
        time.sleep(2)  # anything sent twice would have arrived by now
        assert len(receiver.arrivals) == 20
        assert [a.verified(hook["secret"]) for a in arrivals] == expected
        log = httpx.get(f"{base_url}/webhooks/{hook['id']}/deliveries?limit=100", headers=AUTH)
        failures = [d for d in log.json()["items"] if d["status_code"] is None]
        assert failures
        assert all(d["event_sequence"] == 1 for d in failures)
        assert all("refused" in d["error"] or "connect" in d["error"] for d in failures)


def test_deleting_a_subscription_stops_its_deliveries(postgres_service: str) -> None:
    with receiving() as receiver:
        hook = subscribe(postgres_service, receiver.url)
        first = httpx.post(f"{postgres_service}/products", json=LAMP, headers=AUTH)
        assert first.status_code == 201
        receiver.wait_for(1)
        path = f"{postgres_service}/webhooks/{hook['id']}"
        assert httpx.delete(path, headers=AUTH).status_code == 204
        more = httpx.post(
            f"{postgres_service}/products", json={**LAMP, "sku": "HOOK-2"}, headers=AUTH
        )
        assert more.status_code == 201
        time.sleep(2.5)
        assert len(receiver.arrivals) == 1
        assert httpx.get(path, headers=AUTH).status_code == 404
        assert httpx.get(f"{path}/deliveries", headers=AUTH).status_code == 404


REFUSED_TARGETS = (
    "http://example.com/hooks",
    "https://127.0.0.1/hooks",
    "https://localhost:8443/hooks",
    "https://[::1]/hooks",
    "https://[::ffff:10.0.0.1]/hooks",
    "https://169.254.169.254/computeMetadata/v1/",
    "https://10.1.2.3/hooks",
    "https://192.168.0.10/hooks",
    "https://[fd00::1]/hooks",
    "https://0.0.0.0/hooks",
)


def test_private_and_plain_http_targets_are_refused_by_default(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    env = service_env(empty_postgres_url)
    del env["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"]
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _):
        for url in REFUSED_TARGETS:
            response = httpx.post(f"{base_url}/webhooks", json={"url": url}, headers=AUTH)
            assert response.status_code == 422, (url, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert [e["field"] for e in response.json()["errors"]] == ["url"], url
        assert httpx.get(f"{base_url}/webhooks", headers=AUTH).json() == {"items": []}
