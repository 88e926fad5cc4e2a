"""Stock under concurrent writers, over real HTTP against two uvicorn workers on PostgreSQL."""

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx2 as httpx
import psycopg
import pytest

from cme_adapters.sql.config import PoolSettings
from cme_adapters.system import SystemClock, Uuid7Generator
from cme_domain.batch import Batch
from cme_domain.batch_use_cases import WriteBatch
from cme_domain.principal import WRITE_SCOPE, Principal
from cme_domain.product import Product, ProductSpec
from cme_domain.stock import StockEntry
from tests.integration.databases import open_database
from tests.integration.server import running_cme

API_KEY = "stock-race-key-0123456789"
AUTH = {"X-API-Key": API_KEY}
MERGE_PATCH = {**AUTH, "Content-Type": "application/merge-patch+json"}
LAMP = {"sku": "STOCK", "name": "Counted lamp", "price": "5.00"}
WRITER = Principal("importer", frozenset({WRITE_SCOPE}))


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


def ledger(database_url: str, product_id: str) -> list[tuple[int, str]]:
    with psycopg.connect(database_url) as db:
        rows = db.execute(
            "SELECT delta, reason FROM stock_ledger WHERE product_id = %s", (product_id,)
        ).fetchall()
    return [(int(delta), str(reason)) for delta, reason in rows]


def test_200_concurrent_sales_of_50_in_stock_sell_exactly_50(
    base_url: str, empty_postgres_url: str
) -> None:
    product = httpx.post(f"{base_url}/products", json={**LAMP, "quantity": 50}, headers=AUTH)
    url = f"/products/{product.json()['id']}/stock-adjustments"

    async def sell() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
            sale = {"delta": -1, "reason": "sale"}
            return list(
                await asyncio.gather(*(http.post(url, json=sale, headers=AUTH) for _ in range(200)))
            )

    responses = asyncio.run(sell())
    assert Counter(r.status_code for r in responses) == {201: 50, 409: 150}
    refusals = [r.json() for r in responses if r.status_code == 409]
    assert {p["type"] for p in refusals} == {"urn:cme:problem:insufficient-stock"}
    assert all(p["detail"].startswith("only 0 available") for p in refusals)
    final = httpx.get(f"{base_url}/products/{product.json()['id']}").json()
    assert (final["quantity"], final["version"]) == (0, 51)
    entries = ledger(empty_postgres_url, product.json()["id"])
    assert Counter(entries) == {(-1, "sale"): 50, (50, "initial"): 1}
    assert sorted(r.json()["quantity_after"] for r in responses if r.status_code == 201) == list(
        range(50)
    )


def test_after_100_concurrent_adjustments_the_ledger_lists_them_newest_applied_first(
    base_url: str,
) -> None:
    product = httpx.post(f"{base_url}/products", json={**LAMP, "quantity": 1}, headers=AUTH)
    product_url = f"{base_url}/products/{product.json()['id']}"

    async def add_one() -> None:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
            one = {"delta": 1, "reason": "restock"}
            url = f"{product_url}/stock-adjustments"
            answers = await asyncio.gather(
                *(http.post(url, json=one, headers=AUTH) for _ in range(100))
            )
            assert {r.status_code for r in answers} == {201}

    asyncio.run(add_one())
    entries: list[dict[str, int]] = []
    params: dict[str, str] = {"limit": "30"}
    while True:
        page = httpx.get(f"{product_url}/stock-adjustments", params=params).json()
        entries += page["items"]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    final = httpx.get(product_url).json()

    versions = [e["version_after"] for e in entries]
    inversions = sum(newer < older for newer, older in itertools.pairwise(versions))
    assert inversions == 0, f"{inversions} inversions, the first entry at v{versions[0]}"
    assert versions == list(range(final["version"], 0, -1))
    assert entries[0]["quantity_after"] == final["quantity"] == 101


def test_concurrent_adjustments_patches_and_puts_keep_quantity_equal_to_the_ledger_sum(
    base_url: str, empty_postgres_url: str
) -> None:
    created = httpx.post(f"{base_url}/products", json={**LAMP, "quantity": 100}, headers=AUTH)
    product_url = f"/products/{created.json()['id']}"
    rng = random.Random(17)

    async def writer(http: httpx.AsyncClient, seed: int) -> list[int]:
        mine = random.Random(seed)
        statuses = []
        for _ in range(25):
            kind = mine.choice(["adjust", "adjust", "patch", "put"])
            if kind == "adjust":
                body = {"delta": mine.choice([-7, -3, -1, 1, 2, 5]), "reason": "count"}
                response = await http.post(
                    f"{product_url}/stock-adjustments", json=body, headers=AUTH
                )
            elif kind == "patch":
                quantity = mine.randrange(0, 200)
                response = await http.patch(
                    product_url,
                    content=f'{{"quantity": {quantity}}}'.encode(),
                    headers=MERGE_PATCH,
                )
            else:
                body = {**LAMP, "quantity": mine.randrange(0, 200)}
                response = await http.put(product_url, json=body, headers=AUTH)
            statuses.append(response.status_code)
        return statuses

    async def race() -> list[int]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            runs = await asyncio.gather(*(writer(http, rng.randrange(10**9)) for _ in range(16)))
        return [status for run in runs for status in run]

    statuses = asyncio.run(race())
    # 409: an adjustment below zero, or a PATCH that kept losing its compare-and-set.
    assert set(statuses) <= {200, 201, 409}
    assert statuses.count(200) + statuses.count(201) > 200
    final = httpx.get(f"{base_url}{product_url}").json()
    entries = ledger(empty_postgres_url, created.json()["id"])
    assert final["quantity"] == sum(delta for delta, _ in entries)
    with psycopg.connect(empty_postgres_url) as db:
        chain = db.execute(
            "SELECT delta, quantity_after, version_after FROM stock_ledger"
            " WHERE product_id = %s ORDER BY version_after",
            (created.json()["id"],),
        ).fetchall()
    # Entry by entry in version order, each delta takes the previous quantity to the next.
    running = 0
    for delta, quantity_after, _ in chain:
        running += delta
        assert running == quantity_after
    assert len({version for _, _, version in chain}) == len(chain)


def test_an_upsert_racing_a_create_of_its_sku_keeps_quantity_equal_to_the_ledger(
    empty_postgres_url: str,
) -> None:
    """The racing create commits while the upsert waits on the sku's index entry: the upsert
    then replaces a product it never read, so it starts again rather than guess the delta."""

    async def race() -> UUID:
        database = await open_database(empty_postgres_url, PoolSettings(size=2))
        try:
            upsert = WriteBatch(database.unit_of_work, SystemClock(), Uuid7Generator())
            batch = Batch.parse(
                {"mode": "upsert", "products": [{**LAMP, "sku": "RACED", "quantity": 7}]}
            )
            spec = ProductSpec.parse({**LAMP, "sku": "RACED", "quantity": 5})
            first = Product.new(Uuid7Generator().new_id(), spec, SystemClock().now())
            async with database.unit_of_work() as creator:
                await creator.products.add(
                    first, StockEntry.initial(Uuid7Generator().new_id(), first)
                )
                writer = asyncio.create_task(upsert(WRITER, batch))
                await asyncio.sleep(0.5)  # the upsert is now waiting on the sku
                assert not writer.done()
                await creator.commit()
            [item] = (await writer)[0]
        finally:
            await database.close()
        assert (item.created, item.product.id, item.product.quantity) == (False, first.id, 7)
        return first.id

    product_id = asyncio.run(race())
    assert sorted(ledger(empty_postgres_url, str(product_id))) == [(2, "set"), (5, "initial")]


@pytest.mark.parametrize("mode", ["create", "upsert"])
def test_concurrent_batches_with_one_key_write_once_and_all_get_its_answer(
    base_url: str, empty_postgres_url: str, mode: str
) -> None:
    """The first to commit writes; the others waited on its skus or its key, and replay it."""
    products = [{**LAMP, "sku": f"KEYED-{mode}-{n}", "quantity": n} for n in range(1, 4)]
    body = {"mode": mode, "products": products}
    headers = {**AUTH, "Idempotency-Key": f"import-{mode}"}

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            return list(
                await asyncio.gather(
                    *(http.post("/products/batch", json=body, headers=headers) for _ in range(8))
                )
            )

    responses = asyncio.run(send())
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert (
        sorted(r.headers.get("idempotent-replayed", "") for r in responses) == [""] + ["true"] * 7
    )
    assert {r.text for r in responses} == {responses[0].text}
    for item in responses[0].json()["items"]:
        assert (item["status"], item["product"]["version"]) == (201, 1)
        assert ledger(empty_postgres_url, item["product"]["id"]) == [
            (item["product"]["quantity"], "initial")
        ]
