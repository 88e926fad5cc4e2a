"""Races over real HTTP against two uvicorn workers on PostgreSQL: no lost update, no duplicate."""

import asyncio
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest

from tests.integration.server import running_cme

API_KEY = "race-key-0123456789abcdef"
AUTH = {"X-API-Key": API_KEY}
MERGE_PATCH = {**AUTH, "Content-Type": "application/merge-patch+json"}


@pytest.fixture
def base_url(empty_postgres_url: str, tmp_path: Path) -> Iterator[str]:
    env = {"DATABASE_URL": empty_postgres_url, "API_KEY": API_KEY, "LOG_LEVEL": "WARNING"}
    with running_cme(env, tmp_path, tmp_path / "cme.log", "--workers", "2") as (url, _):
        yield url


def test_racing_read_modify_writes_with_if_match_lose_no_increment(base_url: str) -> None:
    clients, increments = 8, 5
    product = {"sku": "RACE", "name": "Counter", "price": "1.00", "quantity": 0}
    url = httpx.post(f"{base_url}/products", json=product, headers=AUTH).headers["location"]
    statuses: list[int] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            done = 0
            while done < increments:
                current = await http.get(url)
                quantity = current.json()["quantity"] + 1
                response = await http.patch(
                    url,
                    content=f'{{"quantity": {quantity}}}'.encode(),
                    headers={**MERGE_PATCH, "If-Match": current.headers["etag"]},
                )
                statuses.append(response.status_code)
                done += response.status_code == 200

    async def race() -> None:
        await asyncio.gather(*(client() for _ in range(clients)))

    asyncio.run(race())
    final = httpx.get(base_url + url).json()
    assert final["quantity"] == clients * increments
    assert final["version"] == 1 + clients * increments
    assert set(statuses) <= {200, 412}
    assert statuses.count(200) == clients * increments


def test_concurrent_retries_of_one_idempotency_key_create_exactly_one_product(
    base_url: str, empty_postgres_url: str
) -> None:
    body = {"sku": "ONCE", "name": "Only once", "price": "3.00", "quantity": 1}
    headers = {**AUTH, "Idempotency-Key": f"retry-{uuid.uuid4()}"}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            return list(
                await asyncio.gather(
                    *(http.post("/products", json=body, headers=headers) for _ in range(12))
                )
            )

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} <= {201, 409}
    created_ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created_ids) == 1
    with psycopg.connect(empty_postgres_url) as db:
        assert db.execute("SELECT count(*) FROM products WHERE sku = 'ONCE'").fetchone() == (1,)
    retry = httpx.post(f"{base_url}/products", json=body, headers=headers)
    assert (retry.status_code, retry.json()["id"]) == (201, created_ids.pop())


def test_walking_pages_during_inserts_and_deletes_sees_every_lasting_row_once(
    base_url: str, empty_postgres_url: str
) -> None:
    lasting = 3000
    with psycopg.connect(empty_postgres_url) as db, db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO products (id, sku, name, name_folded, price_cents, quantity, created_at,"
            " updated_at, version) VALUES (%s, %s, %s, lower(%s), %s, 1,"
            " now() - %s * interval '1 ms', now(), 1)",
            [
                (uuid.uuid4(), f"KEEP-{n}", f"Keep {n}", f"Keep {n}", random.randrange(100_000), n)
                for n in range(lasting)
            ],
        )
    stop = asyncio.Event()

    async def churn() -> int:
        changes = 0
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            while not stop.is_set():
                name = f"Churn {random.random()}"
                body = {
                    "sku": f"C-{uuid.uuid4().hex}",
                    "name": name,
                    "price": "5.00",
                    "quantity": 1,
                }
                created = await http.post("/products", json=body, headers=AUTH)
                await http.delete(created.headers["location"], headers=AUTH)
                changes += 2
        return changes

    async def walk(sort: str) -> list[str]:
        seen: list[str] = []
        query = f"/products?limit=100&sort={sort}&order=desc"
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            url: str | None = query
            while url:
                page = (await http.get(url)).json()
                seen += [p["sku"] for p in page["items"]]
                cursor = page["next_cursor"]
                url = f"{query}&cursor={cursor}" if cursor else None
                await asyncio.sleep(0)
        return seen

    async def scenario() -> tuple[int, list[list[str]]]:
        churner = asyncio.create_task(churn())
        walks = [await walk(sort) for sort in ("created_at", "name", "price")]
        stop.set()
        return await churner, walks

    changes, walks = asyncio.run(scenario())
    assert changes > 0
    for seen in walks:
        kept = [sku for sku in seen if sku.startswith("KEEP-")]
        assert len(kept) == lasting
        assert len(set(kept)) == lasting
