"""Waiting feed readers on SQLite: one poll per worker however many wait, and a commit in the
same worker wakes them at once."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from cme_adapters.sql import migrate
from cme_adapters.sql.config import PoolSettings
from cme_adapters.sqlite.database import SqlDatabase
from cme_adapters.system import Uuid7Generator
from cme_domain.changes import ChangeBatch
from cme_domain.feed import ReadChanges
from cme_domain.product import Product, ProductSpec

pytestmark = pytest.mark.anyio

IDS = Uuid7Generator()
WAITERS = 40


@pytest.fixture
async def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'waits.db'}"
    await migrate.upgrade(url)
    return url


@pytest.fixture
async def database(url: str) -> AsyncIterator[SqlDatabase]:
    database = SqlDatabase.connect(url, PoolSettings(size=4))
    await database.open()
    database.listen()
    try:
        yield database
    finally:
        await database.close()


async def create(database: SqlDatabase, sku: str, *, atomic: bool = False) -> None:
    spec = ProductSpec.parse({"sku": sku, "name": "Lamp", "price": "1.00", "quantity": 1})
    async with database.unit_of_work(atomic=atomic) as uow:
        await uow.products.add(Product.new(IDS.new_id(), spec, datetime.now(UTC)))
        await uow.commit()


def feed_statements(database: SqlDatabase) -> list[str]:
    """Every statement the database runs on the feed's table from now on."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "product_changes" in statement:
            seen.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    return seen


async def wait_from_the_end(database: SqlDatabase, seconds: float) -> "asyncio.Task[ChangeBatch]":
    read = ReadChanges(database.change_feed(), database.change_notices())
    end = (await database.change_feed().read(None, 1)).end
    return asyncio.create_task(read(end, 10, wait_seconds=seconds))


async def test_idle_waiters_cost_one_poll_per_interval_not_one_each(
    database: SqlDatabase,
) -> None:
    database.change_notices().poll_seconds = 0.05
    await create(database, "WAIT-1")
    waiting = [await wait_from_the_end(database, 2) for _ in range(WAITERS)]
    await asyncio.sleep(0.3)  # every reader has read once and waits
    statements = feed_statements(database)
    await asyncio.sleep(1.0)
    polls = len(statements)
    for task in waiting:
        task.cancel()

    # 20 intervals of 0.05 s in the second: about 20 polls, not 20 for each of 40 readers.
    assert polls <= 30, f"{polls} feed statements in 1 s with {WAITERS} idle readers"


async def test_a_commit_in_the_same_worker_wakes_a_waiter_long_before_the_poll(
    database: SqlDatabase,
) -> None:
    database.change_notices().poll_seconds = 5
    for atomic in (False, True):
        waiting = await wait_from_the_end(database, 10)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await create(database, f"WAKE-{atomic}", atomic=atomic)
        batch = await asyncio.wait_for(waiting, 2)
        woke = time.monotonic() - started

        assert [c.product.sku for c in batch.items if c.product] == [f"WAKE-{atomic}"]
        assert woke < 0.5, f"a waiter heard of its own worker's commit after {woke:.2f} s"


async def test_another_process_commit_still_reaches_a_waiter_within_a_poll(
    database: SqlDatabase, url: str
) -> None:
    database.change_notices().poll_seconds = 0.05
    other = SqlDatabase.connect(url, PoolSettings(size=1))  # its notices are not ours
    try:
        waiting = await wait_from_the_end(database, 10)
        await asyncio.sleep(0.2)
        await create(other, "ELSEWHERE-1")
        batch = await asyncio.wait_for(waiting, 1)
    finally:
        await other.close()

    assert [c.product.sku for c in batch.items if c.product] == ["ELSEWHERE-1"]
