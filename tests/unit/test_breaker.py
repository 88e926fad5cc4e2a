"""The PostgreSQL adapter's breaker, on a fake connection attempt: no database needed."""

import asyncio
import logging

import psycopg
import pytest

from cme_adapters.postgres.breaker import Breaker
from cme_adapters.postgres.uow import Refused


class FakeDatabase:
    def __init__(self) -> None:
        self.up = False
        self.attempts = 0
        self.replaced = 0

    async def connect(self) -> None:
        self.attempts += 1
        await asyncio.sleep(0.01)
        if not self.up:
            raise psycopg.OperationalError("connection refused")

    async def replace_idle(self) -> None:
        self.replaced += 1


@pytest.mark.anyio
async def test_one_failed_connection_refuses_at_once_and_one_probe_at_a_time_closes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    database, failures = FakeDatabase(), []
    breaker = Breaker(
        database.connect, database.replace_idle, lambda: failures.append(1), retry_seconds=0.02
    )
    breaker.reached()  # the database was up once
    breaker.refuse()  # closed: nothing to say
    with caplog.at_level(logging.WARNING, "cme"):
        asked = await asyncio.gather(*(breaker.check() for _ in range(10)))
        assert asked == [False] * 10
        assert database.attempts == 1  # the ten callers shared one attempt
        with pytest.raises(Refused, match="the database is not reachable: connection refused"):
            breaker.refuse()
        await asyncio.sleep(0.1)  # the breaker retries on its own, one attempt at a time
        assert 3 <= database.attempts <= 6
        assert database.replaced == 0
        database.up = True
        await asyncio.wait_for(breaker.reachable(), 1)
    breaker.refuse()
    assert database.replaced == 1  # the dead pooled connections, before serving again
    assert len(failures) == database.attempts - 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unreachable")
    assert lines[1].startswith("database reachable again after")
    await breaker.close()


@pytest.mark.anyio
async def test_a_probe_that_connects_while_the_database_is_up_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = FakeDatabase()
    database.up = True
    breaker = Breaker(database.connect, database.replace_idle)
    with caplog.at_level(logging.WARNING, "cme"):
        assert await breaker.check()
    assert not breaker.troubled
    assert (caplog.records, database.replaced) == ([], 0)
    await breaker.close()


@pytest.mark.anyio
async def test_a_database_never_reached_leaves_the_warning_to_the_start_up_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker = Breaker(FakeDatabase().connect, FakeDatabase().replace_idle, retry_seconds=1)
    with caplog.at_level(logging.INFO, "cme"):
        assert not await breaker.check()
    assert [r.levelname for r in caplog.records] == ["INFO"]
    await breaker.close()
