"""Pooled connections that the server ended (a restart, an admin) cost no request a 503."""

import asyncio
import contextlib
from datetime import UTC, datetime
from uuid import uuid4

import psycopg
import pytest

from cme_adapters.sql.config import PoolSettings
from cme_adapters.system import Uuid7Generator
from cme_domain.errors import StorageUnavailable
from cme_domain.product import Product, ProductSpec
from tests.integration.databases import open_database

pytestmark = pytest.mark.anyio


def terminate_pooled_sessions(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'cme' AND datname = current_database()"
        ).fetchall()
    return len(rows)


def lamp(sku: str) -> Product:
    spec = ProductSpec.parse({"sku": sku, "name": "Lamp", "price": "1.00", "quantity": 1})
    return Product.new(Uuid7Generator().new_id(), spec, datetime.now(UTC))


async def test_every_kind_of_work_survives_its_pooled_sessions_being_ended(
    empty_postgres_url: str,
) -> None:
    database = await open_database(empty_postgres_url, PoolSettings(size=3))
    try:
        async with database.unit_of_work(atomic=False) as uow:
            await uow.products.get(uuid4())  # the pool is full and warm
        await asyncio.sleep(0.2)
        for n, atomic in enumerate((False, True, False, True)):
            assert terminate_pooled_sessions(empty_postgres_url) == 3
            await asyncio.sleep(0.1)  # the server's goodbye is waiting in each socket
            product = lamp(f"STALE-{n}")
            async with database.unit_of_work(atomic=atomic) as uow:
                await uow.products.add(product)
                await uow.commit()
            async with database.unit_of_work(atomic=False) as uow:
                assert await uow.products.get(product.id) == product
            await asyncio.sleep(0.3)  # the background check refills the pool
    finally:
        await database.close()


async def test_a_feed_read_on_an_ended_session_leaves_the_pool_s_warning_to_the_breaker(
    empty_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = await open_database(empty_postgres_url, PoolSettings(size=1))
    feed = database.change_feed()
    try:
        await feed.read(None, 1)  # the one pooled connection is warm
        await asyncio.sleep(0.2)
        assert terminate_pooled_sessions(empty_postgres_url) >= 1
        caplog.clear()
        with caplog.at_level("WARNING", logger="psycopg.pool"):
            with contextlib.suppress(StorageUnavailable):  # the ended session
                await feed.read(None, 1)
            await asyncio.sleep(0.5)
            await feed.read(None, 1)
        passed = [r.getMessage() for r in caplog.records if r.name == "psycopg.pool"]
        assert passed == []  # the unit of work's statements get the same (breaker.py)
    finally:
        await database.close()
