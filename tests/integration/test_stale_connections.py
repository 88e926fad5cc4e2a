"""Pooled connections that the server ended (a restart, an admin) cost no request a 503."""

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import psycopg
import pytest

from cme_adapters.sql.config import PoolSettings
from cme_adapters.system import Uuid7Generator
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
