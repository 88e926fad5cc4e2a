"""PostgreSQL as the app sees it: units of work on psycopg's pool, a probe, and shutdown."""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final

import psycopg
from sqlalchemy.engine import make_url

from cme_adapters.notices import Notices
from cme_adapters.postgres.breaker import Breaker, GuardedPool, QuietWhileTroubled, reporting
from cme_adapters.postgres.changes import PostgresChangeFeed
from cme_adapters.postgres.compiled import compiled
from cme_adapters.postgres.listener import ChangeListener
from cme_adapters.postgres.uow import OUTAGE_ERRORS, PostgresUnitOfWork, unavailable
from cme_adapters.sql import statements
from cme_adapters.sql.config import PoolSettings
from cme_adapters.sql.statements import CURSOR_SECRET, SCHEMA_REVISION
from cme_adapters.system import SystemClock
from cme_adapters.telemetry.database_spans import DatabaseSpans
from cme_domain.errors import StorageUnavailable
from cme_domain.ports import Clock

_FIND_SECRET: Final = compiled(statements.FIND_SECRET)
_INSERT_SECRET: Final = compiled(statements.INSERT_SECRET)


def conninfo(url: str) -> str:
    """The libpq URL psycopg takes, from any PostgreSQL URL the settings accept."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresDatabase:
    def __init__(
        self,
        url: str,
        pool: PoolSettings,
        on_query: Callable[[float], None] | None = None,
        spans: DatabaseSpans | None = None,
        on_connect_failure: Callable[[], None] | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._on_query = on_query
        # What `held` counts by: the same clock as the use cases' in a test that moves time.
        self._clock = clock or SystemClock()
        self._spans = spans
        self._checking: asyncio.Task[None] | None = None
        self._conninfo = conninfo(url)
        self._connect_timeout = pool.connect_timeout_seconds
        self._breaker = Breaker(self._reach, self._replace_idle, on_connect_failure)
        self._quiet = QuietWhileTroubled(self._breaker)
        self._notices = Notices()
        self._listener = ChangeListener(
            self._conninfo,
            self._notices,
            pool.connect_timeout_seconds,
            self._breaker,
            reporting(self._breaker),
        )
        # psycopg_pool hands connections to waiters first come, first served, so no gate
        # is needed in front of it (tests/integration/test_pool_fairness.py).
        self._pool = GuardedPool(
            self._conninfo,
            self._breaker,
            min_size=pool.size,
            max_size=pool.size,
            timeout=pool.timeout_seconds,
            max_lifetime=pool.recycle_seconds,
            # The pool retries a lost connection with a growing backoff (1, 2, 4, 8 s...): after
            # a 10 s outage the next attempt could come 5 s after the database is back. Giving
            # up after the request timeout instead lets the next waiting request start a fresh
            # attempt at once, so the service heals within about a second of the database.
            reconnect_timeout=pool.timeout_seconds,
            open=False,
            name="cme",
            kwargs={
                # Autocommit: a statement that needs no transaction costs one round trip.
                "autocommit": True,
                "connect_timeout": pool.connect_timeout_seconds,
                # In UTC, psycopg hands timestamps back already in the zone the domain uses.
                "options": f"-c statement_timeout={pool.statement_timeout_ms} -c TimeZone=UTC",
                "application_name": "cme",
            },
        )

    async def open(self) -> None:
        """Start filling the pool without waiting: a database still down must not stop start-up."""
        logging.getLogger("psycopg.pool").addFilter(self._quiet)
        await self._pool.open(wait=False)

    def listen(self) -> None:
        """Start hearing of commits (a serving worker's job; one-off commands need not)."""
        self._listener.start()

    def change_feed(self) -> PostgresChangeFeed:
        return PostgresChangeFeed(self._pool, self._check_idle)

    def change_notices(self) -> Notices:
        return self._notices

    def unit_of_work(self, *, atomic: bool = True) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(
            self._pool,
            self._clock,
            atomic=atomic,
            on_query=self._on_query,
            on_broken=self._check_idle,
            spans=self._spans,
            on_change=self._listener.announce,
        )

    def _check_idle(self) -> "asyncio.Task[None]":
        """After a connection broke, test the idle ones too, once, in the background.

        A database restart breaks every pooled connection, but psycopg_pool finds that out
        one request at a time; each stale connection would fail one more request, minutes
        later if it sat idle. pool.check() replaces them all at once, without costing a
        round trip on every check-out. The breaker first asks whether the database is there
        at all: if not, it is open, and there is nothing to replace them with yet.
        """
        if self._checking is None or self._checking.done():
            # Asked now, not when the task starts: until the answer, the pool's warnings
            # about the connections it discards are the breaker's to count.
            reachable = self._breaker.check()
            self._checking = asyncio.get_running_loop().create_task(self._check(reachable))
        return self._checking

    async def _check(self, reachable: Awaitable[bool]) -> None:
        if await reachable:
            await self._replace_idle()

    async def _replace_idle(self) -> None:
        with contextlib.suppress(*OUTAGE_ERRORS):
            await self._pool.check()

    async def _reach(self) -> None:
        """One connection of its own, closed at once: the breaker's probe."""
        connection = await psycopg.AsyncConnection.connect(
            self._conninfo, connect_timeout=self._connect_timeout, application_name="cme-probe"
        )
        await connection.close()

    async def ping(self) -> None:
        """One trivial round trip; raises StorageUnavailable when the database cannot answer."""
        try:
            async with self._pool.connection() as connection:
                await connection.execute("SELECT 1")
        except OUTAGE_ERRORS as error:
            raise unavailable(error) from error

    async def cursor_secret(self) -> bytes:
        """The key cursors are signed with: made on first use and kept in the database, so
        every replica signs and checks alike."""
        params = {"name": CURSOR_SECRET, "value": secrets.token_urlsafe(48)}
        try:
            async with self._pool.connection() as connection:
                row = await (await connection.execute(_FIND_SECRET, params)).fetchone()
                if row is None:
                    # Two replicas starting together: the first insert wins, both read it.
                    with contextlib.suppress(psycopg.errors.UniqueViolation):
                        await connection.execute(_INSERT_SECRET, params)
                    row = await (await connection.execute(_FIND_SECRET, params)).fetchone()
        except psycopg.errors.UndefinedTable as error:
            raise StorageUnavailable("the database schema is behind: run cme migrate") from error
        except OUTAGE_ERRORS as error:
            raise unavailable(error) from error
        assert row is not None
        return str(row[0]).encode()

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at; None when it was never migrated."""
        try:
            async with self._pool.connection() as connection:
                cursor = await connection.execute(SCHEMA_REVISION)
                row: Any = await cursor.fetchone()
        except psycopg.errors.UndefinedTable:
            return None
        except OUTAGE_ERRORS as error:
            raise unavailable(error) from error
        return None if row is None else str(row[0])

    def pool_stats(self) -> dict[str, int]:
        stats = self._pool.get_stats()
        idle = stats.get("pool_available", 0)
        return {
            "in_use": stats.get("pool_size", 0) - idle,
            "idle": idle,
            "waiting": stats.get("requests_waiting", 0),
        }

    async def close(self) -> None:
        self._notices.stop()
        await self._listener.close()
        await self._breaker.close()
        await self._pool.close()
        logging.getLogger("psycopg.pool").removeFilter(self._quiet)
