"""Reservations under concurrent carts, over real HTTP against two uvicorn workers on
PostgreSQL: no unit is ever held or spent twice."""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest

from tests.integration.server import running_cme

API_KEY = "reservation-race-key-0123456789"
AUTH = {"X-API-Key": API_KEY}
LAMP = {"sku": "HELD", "name": "Held lamp", "price": "5.00"}


@pytest.fixture
def base_url(empty_postgres_url: str, tmp_path: Path) -> Iterator[str]:
    env = {
        "DATABASE_URL": empty_postgres_url,
        "API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_WRITES": "0",
    }
    with running_cme(env, tmp_path, tmp_path / "cme.log", "--workers", "2") as (url, _):
        yield url


def create(base_url: str, quantity: int, sku: str = "HELD") -> str:
    response = httpx.post(
        f"{base_url}/products", json={**LAMP, "sku": sku, "quantity": quantity}, headers=AUTH
    )
    assert response.status_code == 201, response.text
    product_id: str = response.json()["id"]
    return product_id


def ledger_sum(database_url: str, product_id: str) -> int:
    with psycopg.connect(database_url) as db:
        row = db.execute(
            "SELECT coalesce(sum(delta), 0) FROM stock_ledger WHERE product_id = %s",
            (product_id,),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def _all(base_url: str, calls: list[tuple[str, dict[str, object] | None]]) -> list[int]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        answers = await asyncio.gather(
            *(http.post(path, json=body, headers=AUTH) for path, body in calls)
        )
    for answer in answers:
        assert answer.status_code < 500, answer.text
    return [a.status_code for a in answers]


def test_200_concurrent_one_unit_holds_on_50_in_stock_hold_exactly_50(
    base_url: str, empty_postgres_url: str
) -> None:
    lamp = create(base_url, 50)
    cart = {"lines": [{"product_id": lamp, "quantity": 1}]}
    statuses = asyncio.run(_all(base_url, [("/reservations", cart)] * 200))
    assert Counter(statuses) == {201: 50, 409: 150}
    product = httpx.get(f"{base_url}/products/{lamp}").json()
    assert (product["quantity"], product["available"]) == (50, 0)


def test_confirm_release_and_confirm_again_racing_never_spend_a_unit_twice(
    base_url: str, empty_postgres_url: str
) -> None:
    lamp, desk = create(base_url, 40), create(base_url, 40, "DESK")
    ids = []
    for _ in range(20):
        cart = {"lines": [{"product_id": lamp, "quantity": 2}, {"product_id": desk, "quantity": 1}]}
        response = httpx.post(f"{base_url}/reservations", json=cart, headers=AUTH)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    calls: list[tuple[str, dict[str, object] | None]] = [
        (f"/reservations/{i}/{step}", None)
        for i in ids
        for step in ("confirm", "release", "confirm", "release", "confirm")
    ]
    random.Random(7).shuffle(calls)
    statuses = asyncio.run(_all(base_url, calls))
    assert set(statuses) <= {200, 409}
    final = [httpx.get(f"{base_url}/reservations/{i}").json()["status"] for i in ids]
    confirmed = final.count("confirmed")
    assert confirmed + final.count("released") == 20
    for product_id, per_cart in ((lamp, 2), (desk, 1)):
        product = httpx.get(f"{base_url}/products/{product_id}").json()
        assert product["quantity"] == 40 - per_cart * confirmed
        assert product["quantity"] == ledger_sum(empty_postgres_url, product_id)
        assert product["available"] == product["quantity"]
        entries = httpx.get(f"{base_url}/products/{product_id}/stock-adjustments?limit=100").json()[
            "items"
        ]
        spent = [e["reference"] for e in entries if e["reason"] == "reservation"]
        assert len(spent) == len(set(spent)) == confirmed


def test_a_two_second_hold_stops_counting_within_the_second_it_expires_with_no_sweep(
    base_url: str,
) -> None:
    lamp = create(base_url, 3)
    cart = {"lines": [{"product_id": lamp, "quantity": 3}], "ttl_seconds": 2}
    held = httpx.post(f"{base_url}/reservations", json=cart, headers=AUTH).json()
    expires_at = datetime.fromisoformat(held["expires_at"])
    assert httpx.get(f"{base_url}/products/{lamp}").json()["available"] == 0
    time.sleep(max(0.0, expires_at.timestamp() - time.time()))
    # The sweep runs every 30 s; this reads within the same second as expires_at.
    product = httpx.get(f"{base_url}/products/{lamp}").json()
    status = httpx.get(f"{base_url}/reservations/{held['id']}").json()["status"]
    assert time.time() < expires_at.timestamp() + 1
    assert (product["available"], status) == (3, "expired")
    sale = {"delta": -3, "reason": "sale"}
    response = httpx.post(f"{base_url}/products/{lamp}/stock-adjustments", json=sale, headers=AUTH)
    assert response.status_code == 201, response.text


def test_holds_and_sales_racing_for_the_same_units_never_take_more_than_there_is(
    base_url: str, empty_postgres_url: str
) -> None:
    lamp = create(base_url, 50)
    cart = {"lines": [{"product_id": lamp, "quantity": 1}]}
    sale = {"delta": -1, "reason": "sale"}
    calls: list[tuple[str, dict[str, object] | None]] = [("/reservations", cart)] * 100 + [
        (f"/products/{lamp}/stock-adjustments", sale)
    ] * 100
    random.Random(11).shuffle(calls)
    statuses = asyncio.run(_all(base_url, calls))
    assert Counter(statuses) == {201: 50, 409: 150}
    product = httpx.get(f"{base_url}/products/{lamp}").json()
    sold = 50 - product["quantity"]
    assert product["available"] == 0
    assert product["quantity"] == ledger_sum(empty_postgres_url, lamp)
    assert sold + (product["quantity"] - product["available"]) == 50
