"""Feed reads on SQLite only read: a writer holding the database's one write lock never makes
them wait or fail, and an event is in the feed the moment its write commits."""

import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cme_adapters.sql import migrate
from cme_adapters.sql.config import PoolSettings
from cme_adapters.sqlite.database import SqlDatabase
from cme_adapters.system import Uuid7Generator
from cme_domain.product import Product, ProductSpec

pytestmark = pytest.mark.anyio

IDS = Uuid7Generator()
LOCK_WAIT_SECONDS = 0.5


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "reads.db"


@pytest.fixture
async def database(path: Path) -> AsyncIterator[SqlDatabase]:
    url = f"sqlite:///{path}"
    await migrate.upgrade(url)
    database = SqlDatabase.connect(url, PoolSettings(size=2, timeout_seconds=LOCK_WAIT_SECONDS))
    try:
        yield database
    finally:
        await database.close()


async def create(database: SqlDatabase, sku: str) -> None:
    spec = ProductSpec.parse({"sku": sku, "name": "Lamp", "price": "1.00", "quantity": 1})
    async with database.unit_of_work(atomic=False) as uow:
        await uow.products.add(Product.new(IDS.new_id(), spec, datetime.now(UTC)))


async def test_a_feed_read_answers_at_once_while_a_writer_holds_the_lock(
    database: SqlDatabase, path: Path
) -> None:
    await create(database, "READ-1")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # SQLite's one write lock, kept until the end
    try:
        started = time.monotonic()
        batch = await database.change_feed().read(None, 10)
        took = time.monotonic() - started
    finally:
        writer.rollback()
        writer.close()

    assert [c.product.sku for c in batch.items if c.product] == ["READ-1"]
    assert batch.end == batch.items[-1].sequence
    assert took < LOCK_WAIT_SECONDS / 2, f"the read waited {took:.2f} s for the write lock"


async def test_events_are_positioned_in_commit_order_as_they_are_written(
    database: SqlDatabase, path: Path
) -> None:
    for sku in ("ORDER-1", "ORDER-2", "ORDER-3"):
        await create(database, sku)
    with sqlite3.connect(path) as raw:
        positions = raw.execute("SELECT id, position FROM product_changes ORDER BY id").fetchall()

    assert positions == [(1, 1), (2, 2), (3, 3)]
