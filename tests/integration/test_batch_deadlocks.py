"""Concurrent batches over the same skus on PostgreSQL: no deadlock, and never an outage 503."""

import asyncio
from collections import Counter
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest

from cme_adapters.sql.config import PoolSettings
from cme_adapters.system import SystemClock, Uuid7Generator
from cme_domain.errors import WriteContention
from cme_domain.product import Product, ProductSpec
from tests.integration.databases import open_database
from tests.integration.server import running_cme

API_KEY = "deadlock-key-0123456789"
AUTH = {"X-API-Key": API_KEY}
PRODUCTS = [
    {"sku": f"LOCK-{n:03d}", "name": "Ordered lamp", "price": "1.00", "quantity": n}
    for n in range(200)
]
CROSSED = {"name": "Crossed", "price": "1.00", "quantity": 1}


def deadlocks(database_url: str) -> int:
    with psycopg.connect(database_url) as db:
        row = db.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("mode", ["upsert", "create"])
def test_concurrent_batches_of_the_same_skus_in_opposite_orders_never_deadlock(
    empty_postgres_url: str, tmp_path: Path, mode: str
) -> None:
    """Each batch locks and inserts its rows in sku order, whatever order it lists them in."""
    env = {
        "DATABASE_URL": empty_postgres_url,
        "API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_WRITES": "0",
        "RATE_LIMIT_BATCH": "0",
    }
    before = deadlocks(empty_postgres_url)

    async def rounds(base_url: str) -> list[Counter[int]]:
        seen = []
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            for _ in range(3):  # the first round inserts, the next ones (upsert) replace
                bodies = [
                    {"mode": mode, "products": PRODUCTS if n % 2 else PRODUCTS[::-1]}
                    for n in range(24)
                ]
                answers = await asyncio.gather(
                    *(http.post("/products/batch", json=b, headers=AUTH) for b in bodies)
                )
                seen.append(Counter(a.status_code for a in answers))
        return seen

    log = tmp_path / "cme.log"
    with running_cme(env, tmp_path, log, "--workers", "2") as (base_url, _):
        statuses = asyncio.run(rounds(base_url))
    # The server processes have exited, and with them every backend: their counts are in.
    found = deadlocks(empty_postgres_url) - before
    if mode == "upsert":
        assert statuses == [{200: 24}] * 3
    else:  # one batch creates them all; the others find every sku taken
        assert statuses == [{200: 1, 409: 23}, {409: 24}, {409: 24}]
    assert found == 0, f"{found} deadlocks; the log says: {log.read_text()[-2000:]}"


def test_a_deadlock_the_database_reports_anyway_is_write_contention_not_an_outage(
    empty_postgres_url: str,
) -> None:
    """Two transactions that each replace the other's product: PostgreSQL ends one of them."""

    async def cross() -> list[BaseException | None]:
        database = await open_database(empty_postgres_url, PoolSettings(size=4))
        clock, ids = SystemClock(), Uuid7Generator()
        try:
            products = []
            for sku in ("CROSS-A", "CROSS-B"):
                spec = ProductSpec.parse({**CROSSED, "sku": sku})
                product = Product.new(ids.new_id(), spec, clock.now())
                async with database.unit_of_work() as uow:
                    await uow.products.add(product)
                    await uow.commit()
                products.append(product)
            halfway = asyncio.Barrier(2)

            async def replace_both(first: Product, second: Product) -> None:
                async with database.unit_of_work() as uow:
                    for product in (first, second):
                        spec = ProductSpec.parse({**CROSSED, "sku": product.sku, "quantity": 2})
                        await uow.products.replace(
                            product.id, spec, clock.now(), None, entry_id=ids.new_id()
                        )
                        if product is first:
                            await halfway.wait()
                    await uow.commit()

            a, b = products
            outcomes = await asyncio.gather(
                replace_both(a, b), replace_both(b, a), return_exceptions=True
            )
        finally:
            await database.close()
        return list(outcomes)

    outcomes = asyncio.run(cross())
    failed = [o for o in outcomes if o is not None]
    assert len(failed) == 1, outcomes
    assert isinstance(failed[0], WriteContention), repr(failed[0])
