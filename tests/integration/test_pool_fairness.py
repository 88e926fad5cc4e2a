"""Under contention every unit of work gets a connection in turn; none starves into a 503."""

import asyncio
import time
from uuid import uuid4

import pytest

from cme_adapters.sql.config import PoolSettings
from cme_domain.errors import StorageUnavailable
from tests.integration.databases import open_database

pytestmark = pytest.mark.anyio


async def test_busy_readers_are_served_in_turn_without_timeouts(empty_postgres_url: str) -> None:
    # 24 tasks on 2 connections: the same 12:1 squeeze as 64 wrk connections on 2 workers
    # with pools of 5, without the HTTP work that spaces real requests out.
    database = await open_database(empty_postgres_url, PoolSettings(size=2, timeout_seconds=0.5))
    served, refused, slowest = 0, 0, 0.0
    deadline = time.monotonic() + 3

    async def reader() -> None:
        nonlocal served, refused, slowest
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                async with database.unit_of_work(atomic=False) as uow:
                    await uow.products.get(uuid4())
                served += 1
            except StorageUnavailable:
                refused += 1
            slowest = max(slowest, time.monotonic() - started)

    try:
        await asyncio.gather(*(reader() for _ in range(24)))
    finally:
        await database.close()
    print(f"served {served}, refused {refused}, slowest {slowest * 1000:.0f} ms")
    assert served > 1000
    assert refused == 0
    assert slowest < 0.5
