"""The SQL unit of work: statements run in one greenlet each, atomic ones in one transaction."""

import contextlib
import sqlite3
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.util import greenlet_spawn

from cme_adapters.sql.engine import OUTAGE_ERRORS, first_line
from cme_adapters.sqlite.gate import FirstComeGate
from cme_adapters.sqlite.repository import SqlIdempotencyStore, SqlProductRepository
from cme_adapters.sqlite.reservations import SqlReservationRepository
from cme_adapters.sqlite.webhooks import SqlWebhookRepository
from cme_domain.errors import StorageUnavailable, WriteContention
from cme_domain.ports import Clock

T = TypeVar("T")


class SqlUnitOfWork:
    """Runs the repositories' work on the async engine's synchronous core.

    SQLAlchemy's AsyncConnection starts a greenlet for every connect, execute, commit and
    close; here each piece of work (check-out, statements, fetch and, outside a transaction,
    check-in) runs in a single one (measured in bench/RESULTS.md).
    """

    def __init__(
        self,
        engine: Engine,
        gate: FirstComeGate,
        clock: Clock,
        *,
        atomic: bool,
        on_query: Callable[[float], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        # A non-atomic unit of work gets an AUTOCOMMIT engine: each statement commits itself.
        self._engine = engine
        self._gate = gate
        self._atomic = atomic
        # Timed here rather than by engine events: any listener sends every execution through
        # SQLAlchemy's event dispatch, which cost 25-95 us per statement (bench/RESULTS.md).
        self._on_query = on_query
        # Told once work that writes change events (every `together`) has committed.
        self._on_change = on_change
        self._changed = False
        self._connection: Connection | None = None
        self.products = SqlProductRepository(self.run, self.together, clock)
        self.idempotency = SqlIdempotencyStore(self.run)
        self.reservations = SqlReservationRepository(self.run, self.together, clock)
        self.webhooks = SqlWebhookRepository(self.run, self.atomically)

    async def __aenter__(self) -> Self:
        await self._gate.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._connection is not None:
                # Closing rolls back whatever was not committed. If the connection is already
                # gone, the pool discards it; there is nothing left to roll back.
                with contextlib.suppress(*OUTAGE_ERRORS):
                    await greenlet_spawn(self._release)
        finally:
            self._gate.leave()
        if isinstance(exc, OperationalError) and _lock_wait_ended(exc):
            # Another worker's transaction held the file's write lock for the whole busy
            # timeout: the database is there, this write lost the race. 409, retried by a batch.
            raise WriteContention(first_line(exc)) from exc
        if isinstance(exc, OUTAGE_ERRORS):
            raise StorageUnavailable(first_line(exc)) from exc

    async def run(self, work: Callable[[Connection], T]) -> T:
        return await greenlet_spawn(self._run, work)

    async def together(self, work: Callable[[Connection], T]) -> T:
        """Run work whose statements must take effect together, even outside a transaction,
        and that writes change events."""
        result = await self.atomically(work)
        if self._atomic:
            self._changed = True
        else:
            self._announce()
        return result

    async def atomically(self, work: Callable[[Connection], T]) -> T:
        """Run work whose statements must take effect together, even outside a transaction."""
        if self._atomic:
            return await self.run(work)
        return await greenlet_spawn(self._together, work)

    def _together(self, work: Callable[[Connection], T]) -> T:
        with self._engine.connect() as connection:
            # Only for this connection: it goes back to the pool in autocommit mode.
            connection = connection.execution_options(isolation_level="SERIALIZABLE")
            with connection.begin():
                return self._timed(work, connection)

    async def commit(self) -> None:
        if self._connection is not None:
            await greenlet_spawn(self._commit)
            if self._changed:
                self._changed = False
                self._announce()

    def _announce(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _run(self, work: Callable[[Connection], T]) -> T:
        if not self._atomic:
            with self._engine.connect() as connection:
                return self._timed(work, connection)
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._timed(work, self._connection)

    def _timed(self, work: Callable[[Connection], T], connection: Connection) -> T:
        if self._on_query is None:
            return work(connection)
        started = time.perf_counter()
        try:
            return work(connection)
        finally:
            self._on_query(time.perf_counter() - started)

    def _commit(self) -> None:
        assert self._connection is not None
        try:
            self._connection.commit()
        finally:
            with contextlib.suppress(*OUTAGE_ERRORS):
                self._release()

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _lock_wait_ended(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
