"""The PostgreSQL unit of work: a pooled autocommit connection per statement, or one transaction."""

import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from cme_adapters.postgres.repository import (
    PostgresIdempotencyStore,
    PostgresProductRepository,
    Row,
)
from cme_domain.errors import StorageUnavailable, WriteOutcomeUnknown

# Errors that mean "the database cannot serve us now", as opposed to a bug or bad data. The
# pool's PoolTimeout and a statement_timeout's QueryCanceled are OperationalErrors.
OUTAGE_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError, OSError, TimeoutError)

Connection = AsyncConnection[Row]


def first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


class PostgresUnitOfWork:
    """Outside a transaction each statement borrows a connection for itself and commits alone;
    an atomic unit of work keeps one connection from its first statement to commit or rollback.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        *,
        atomic: bool,
        on_query: Callable[[float], None] | None = None,
    ) -> None:
        self._pool = pool
        self._atomic = atomic
        self._on_query = on_query
        self._connection: Connection | None = None
        self.products = PostgresProductRepository(self)
        self.idempotency = PostgresIdempotencyStore(self)

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
        except OUTAGE_ERRORS as error:
            # PostgreSQL may have committed before the connection broke: nobody can tell.
            raise WriteOutcomeUnknown(first_line(error)) from error

    async def fetch_one(self, sql: str, params: dict[str, Any], *, writes: bool) -> Row | None:
        connection, started = await self._connect()
        try:
            cursor = await connection.execute(sql, params)
            return await cursor.fetchone()
        except OUTAGE_ERRORS as error:
            raise self._unavailable(error, writes) from error
        finally:
            await self._done(connection, started)

    async def fetch_all(self, sql: str, params: dict[str, Any]) -> list[Row]:
        connection, started = await self._connect()
        try:
            cursor = await connection.execute(sql, params)
            return await cursor.fetchall()
        except OUTAGE_ERRORS as error:
            raise self._unavailable(error, writes=False) from error
        finally:
            await self._done(connection, started)

    async def execute(self, sql: str, params: dict[str, Any]) -> int:
        connection, started = await self._connect()
        try:
            cursor = await connection.execute(sql, params)
            return cursor.rowcount
        except OUTAGE_ERRORS as error:
            raise self._unavailable(error, writes=True) from error
        finally:
            await self._done(connection, started)

    async def _connect(self) -> tuple[Connection, float]:
        started = time.perf_counter()
        if self._connection is not None:
            return self._connection, started
        try:
            connection = await self._pool.getconn()
        except OUTAGE_ERRORS as error:
            self._timed(started)
            raise StorageUnavailable(first_line(error)) from error
        if self._atomic:
            self._connection = connection
            try:
                await connection.execute("BEGIN")
            except OUTAGE_ERRORS as error:
                self._timed(started)
                raise StorageUnavailable(first_line(error)) from error
        return connection, started

    async def _done(self, connection: Connection, started: float) -> None:
        self._timed(started)
        if not self._atomic:
            await self._pool.putconn(connection)

    def _timed(self, started: float) -> None:
        # Timed here rather than by a driver hook: the query latency metric's only source.
        if self._on_query is not None:
            self._on_query(time.perf_counter() - started)

    def _unavailable(self, error: BaseException, writes: bool) -> StorageUnavailable:
        # A lost connection inside a transaction takes the transaction with it; outside one,
        # a write may have committed on its own before the connection broke.
        if writes and not self._atomic:
            return WriteOutcomeUnknown(first_line(error))
        return StorageUnavailable(first_line(error))
