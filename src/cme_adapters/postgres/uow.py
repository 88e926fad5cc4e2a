"""The PostgreSQL unit of work: a pooled autocommit connection per statement, or one transaction."""

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Self

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg_pool import AsyncConnectionPool

from cme_adapters.postgres.repository import (
    PostgresIdempotencyStore,
    PostgresProductRepository,
    Row,
)
from cme_adapters.postgres.reservations import PostgresReservationRepository
from cme_adapters.postgres.span_names import span_name
from cme_adapters.postgres.webhooks import PostgresWebhookRepository
from cme_adapters.telemetry.database_spans import DatabaseSpans
from cme_domain.errors import (
    StorageStillUnavailable,
    StorageUnavailable,
    WriteContention,
    WriteOutcomeUnknown,
)
from cme_domain.ports import Clock

# Errors that mean "the database cannot serve us now", as opposed to a bug or bad data. The
# pool's PoolTimeout and a statement_timeout's QueryCanceled are OperationalErrors.
OUTAGE_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError, OSError, TimeoutError)
# OperationalErrors too, but the database is fine: it ended this transaction to let a
# concurrent one finish, and wrote nothing of it. Running it again is safe.
CONTENTION_ERRORS: Final = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

Connection = AsyncConnection[Row]
Cursor = AsyncCursor[Row]
ResultOf = Callable[[Cursor], Awaitable[Any]]


async def _fetch_one(cursor: Cursor) -> Row | None:
    return await cursor.fetchone()


async def _fetch_all(cursor: Cursor) -> list[Row]:
    return await cursor.fetchall()


async def _rowcount(cursor: Cursor) -> int:
    return cursor.rowcount


class Refused(psycopg.OperationalError):
    """The pool refused without trying: the database is known to be unreachable (breaker.py)."""


def first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def unavailable(error: BaseException) -> StorageUnavailable:
    """The domain's word for an outage error."""
    if isinstance(error, Refused):
        return StorageStillUnavailable(first_line(error))
    return StorageUnavailable(first_line(error))


class PostgresUnitOfWork:
    """Outside a transaction each statement borrows a connection for itself and commits alone;
    an atomic unit of work keeps one connection from its first statement to commit or rollback.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        clock: Clock,
        *,
        atomic: bool,
        on_query: Callable[[float], None] | None = None,
        on_broken: Callable[[], Awaitable[None]] | None = None,
        spans: DatabaseSpans | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._pool = pool
        self._atomic = atomic
        self._on_query = on_query
        self._on_broken = on_broken
        # Told once events are committed: at once outside a transaction, at commit inside one.
        self._on_change = on_change
        self._changed = False
        self._spans = spans
        self._connection: Connection | None = None
        self.products = PostgresProductRepository(self, clock)
        self.idempotency = PostgresIdempotencyStore(self)
        self._clock = clock

    # Made when first asked for: most units of work use one repository, and each built
    # eagerly was an object per request for nothing.
    @functools.cached_property
    def reservations(self) -> PostgresReservationRepository:
        return PostgresReservationRepository(self, self._clock)

    @functools.cached_property
    def webhooks(self) -> PostgresWebhookRepository:
        return PostgresWebhookRepository(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            # Whatever was not committed is undone; a connection already gone has nothing left.
            with contextlib.suppress(*OUTAGE_ERRORS):
                await connection.execute("ROLLBACK")
        finally:
            await self._pool.putconn(connection)

    async def commit(self) -> None:
        if self._connection is None:
            return
        try:
            await self._connection.execute("COMMIT")
        except CONTENTION_ERRORS as error:
            raise WriteContention(first_line(error)) from error
        except OUTAGE_ERRORS as error:
            # PostgreSQL may have committed before the connection broke: nobody can tell.
            raise WriteOutcomeUnknown(first_line(error)) from error
        if self._changed:
            self._changed = False
            self._announce()

    def changed(self) -> None:
        """The statement just run wrote change events (the repository says so)."""
        if self._atomic:
            self._changed = True
        else:
            self._announce()

    def _announce(self) -> None:
        if self._on_change is not None:
            self._on_change()

    async def fetch_one(self, sql: str, params: dict[str, Any], *, writes: bool) -> Row | None:
        row: Row | None = await self._run(sql, params, writes, _fetch_one)
        return row

    async def fetch_all(self, sql: str, params: dict[str, Any]) -> list[Row]:
        rows: list[Row] = await self._run(sql, params, False, _fetch_all)
        return rows

    async def execute(self, sql: str, params: dict[str, Any]) -> int:
        count: int = await self._run(sql, params, True, _rowcount)
        return count

    async def _run(self, sql: str, params: dict[str, Any], writes: bool, result: "ResultOf") -> Any:
        # A second try only for a connection the server had already ended (AdminShutdown,
        # left in a pooled connection by a database restart): the statement never ran.
        for last_try in (self._atomic, True):
            connection, started = await self._connect()
            try:
                if self._spans is None:
                    cursor = await connection.execute(sql, params)
                else:  # a child of the request's span, entered in the request's own task
                    with self._spans(*span_name(sql)):
                        cursor = await connection.execute(sql, params)
                return await result(cursor)
            except psycopg.errors.AdminShutdown as error:
                if last_try:
                    raise self._unavailable(error, writes=False) from error
                await self._replace_ended_connections()
            except CONTENTION_ERRORS as error:
                raise WriteContention(first_line(error)) from error
            except OUTAGE_ERRORS as error:
                raise self._unavailable(error, writes) from error
            finally:
                await self._done(connection, started)
        raise AssertionError("unreachable: the last try returns or raises")

    async def _connect(self) -> tuple[Connection, float]:
        started = time.perf_counter()
        if self._connection is not None:
            return self._connection, started
        for last_try in (False, True):
            try:
                connection = await self._pool.getconn()
            except OUTAGE_ERRORS as error:
                self._timed(started)
                raise unavailable(error) from error
            if not self._atomic:
                return connection, started
            try:
                await connection.execute("BEGIN")
            except OUTAGE_ERRORS as error:
                await self._pool.putconn(connection)
                if last_try or not isinstance(error, psycopg.errors.AdminShutdown):
                    self._timed(started)
                    raise self._unavailable(error, writes=False) from error
                await self._replace_ended_connections()
                continue
            self._connection = connection
            return connection, started
        raise AssertionError("unreachable: the last try returns or raises")

    async def _done(self, connection: Connection, started: float) -> None:
        self._timed(started)
        if not self._atomic:
            await self._pool.putconn(connection)

    def _timed(self, started: float) -> None:
        # Timed here rather than by a driver hook: the query latency metric's only source.
        if self._on_query is not None:
            self._on_query(time.perf_counter() - started)

    async def _replace_ended_connections(self) -> None:
        # The other idle connections were most likely ended too (a restart ends them all):
        # test them now, so the second try gets a live one instead of the next dead one, or
        # is refused at once if the database is not back yet.
        if self._on_broken is not None:
            await asyncio.shield(self._on_broken())

    def _broken(self) -> None:
        if self._on_broken is not None:
            self._on_broken()

    def _unavailable(self, error: BaseException, writes: bool) -> StorageUnavailable:
        self._broken()
        # A lost connection inside a transaction takes the transaction with it; outside one,
        # a write may have committed on its own before the connection broke.
        if writes and not self._atomic:
            return WriteOutcomeUnknown(first_line(error))
        return StorageUnavailable(first_line(error))
