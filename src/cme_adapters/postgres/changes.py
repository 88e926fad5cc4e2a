"""The change feed on PostgreSQL: a sequencer gives committed events their positions."""

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Final

from psycopg_pool import AsyncConnectionPool

from cme_adapters.postgres.compiled import compiled
from cme_adapters.postgres.uow import OUTAGE_ERRORS, Connection, unavailable
from cme_adapters.sql import outbox
from cme_domain.changes import ChangeBatch

_ANY_UNPOSITIONED: Final = compiled(outbox.ANY_UNPOSITIONED)
_SEQUENCE: Final = compiled(outbox.SEQUENCE_COMMITTED)
_READ: Final = compiled(outbox.READ)
_BOUNDS: Final = compiled(outbox.BOUNDS)
_PRUNE_THROUGH: Final = compiled(outbox.PRUNE_THROUGH)
_RAISE_HORIZON: Final = compiled(outbox.RAISE_HORIZON)
_PRUNE: Final = compiled(outbox.PRUNE)
_LOCK: Final = "SELECT pg_advisory_xact_lock(%(key)s)"


async def sequence(connection: Connection) -> None:
    """Position every committed event not yet positioned, after every positioned one.

    One step at a time (the advisory lock), each in its own transaction that commits before
    the next step can start: the positions any snapshot sees are then always 1..N with no
    gap, and a later step never hands out a position at or below N. The UPDATE runs after
    the lock is granted, so its snapshot includes the previous step's positions.
    """
    pending = await (await connection.execute(_ANY_UNPOSITIONED)).fetchone()
    if pending is None or not pending[0]:
        return  # the common case: one index probe, no transaction, no lock
    async with connection.transaction():
        await connection.execute(_LOCK, {"key": outbox.SEQUENCER_LOCK})
        await connection.execute(_SEQUENCE, {"batch": outbox.SEQUENCE_BATCH})


class PostgresChangeFeed:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        on_broken: Callable[[], object] | None = None,
    ) -> None:
        self._pool = pool
        # Told when a connection broke under a statement, before it goes back to the pool,
        # as the unit of work tells it: the pool's warning about discarding it is then the
        # breaker's to count, not one more line of the outage.
        self._on_broken = on_broken

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        async with self._pool.connection() as connection:
            try:
                yield connection
            except OUTAGE_ERRORS:
                if self._on_broken is not None:
                    self._on_broken()
                raise

    async def read(self, after: int | None, limit: int) -> ChangeBatch:
        try:
            async with self._connection() as connection:
                await sequence(connection)
                params = {"after": after or 0, "limit": limit}
                rows = await (await connection.execute(_READ, params)).fetchall()
                bounds = await (await connection.execute(_BOUNDS)).fetchone()
        except OUTAGE_ERRORS as error:
            raise unavailable(error) from error
        assert bounds is not None  # the horizon table always has its one row
        pruned, newest = bounds
        items = tuple(outbox.change_of(row) for row in rows)
        return ChangeBatch(items, pruned, max(newest or 0, pruned))

    async def prune(self, before: datetime) -> int:
        removed = 0
        try:
            async with self._connection() as connection:
                await sequence(connection)
                found = await (
                    await connection.execute(_PRUNE_THROUGH, {"before": before})
                ).fetchone()
                if found is not None and found[0] is not None:
                    await connection.execute(_RAISE_HORIZON, {"through": found[0]})
                while True:
                    cursor = await connection.execute(_PRUNE, {"batch": outbox.PRUNE_BATCH})
                    removed += cursor.rowcount
                    if cursor.rowcount < outbox.PRUNE_BATCH:
                        return removed
        except OUTAGE_ERRORS as error:
            raise unavailable(error) from error
