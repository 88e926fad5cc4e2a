"""Databases for the integration suites: each test gets an empty, fully migrated one."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cme_adapters.memory import InMemoryDatabase
from cme_adapters.sql import migrate
from cme_adapters.sql.config import PoolSettings
from cme_adapters.system import SystemClock
from cme_domain.ports import Clock
from tests.integration.databases import open_database


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_url: str) -> Iterator[str]:
    # A thread of its own: async fixtures may ask for this one while their loop is running.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, migrate.upgrade(postgres_url)).result()
    return postgres_url


@pytest.fixture
def empty_postgres_url(migrated_postgres_url: str) -> str:
    with psycopg.connect(migrated_postgres_url, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE products, idempotency_keys, stock_ledger, product_changes, reservations,"
            " reservation_lines, webhooks, webhook_deliveries RESTART IDENTITY"
        )
        connection.execute("UPDATE change_feed_horizon SET pruned_through = 0")
    return migrated_postgres_url


@pytest.fixture
def clock() -> Clock:
    """What `database` counts the products' holds by: a suite that moves time overrides it."""
    return SystemClock()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[Any]:
    """The same empty catalogue on every adapter, so one suite pins them all to one contract."""
    if request.param == "memory":
        yield InMemoryDatabase(clock=clock)
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
        await migrate.upgrade(url)
    else:
        url = request.getfixturevalue("empty_postgres_url")
    sql = await open_database(url, PoolSettings(size=4), clock=clock)
    try:
        yield sql
    finally:
        await sql.close()
