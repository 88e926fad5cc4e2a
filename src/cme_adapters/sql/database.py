"""The SQL database as the app sees it: units of work, a health probe, and shutdown."""

import time
from collections.abc import Callable
from typing import Any

import attrs
from sqlalchemy import Connection, QueuePool, event
from sqlalchemy.ext.asyncio import AsyncEngine

from cme_adapters.sql.engine import TRANSACTION_ISOLATION, PoolSettings, create_engine, ping
from cme_adapters.sql.uow import SqlUnitOfWork


@attrs.define
class SqlDatabase:
    # Pooled connections stay in autocommit, where most work runs: one round trip per
    # statement, not BEGIN, statement and COMMIT. Switching a connection's mode on every
    # check-out and back on check-in cost more CPU than the statement (bench/RESULTS.md), so
    # only atomic units of work pay for it, through this view of the same pool.
    engine: AsyncEngine
    _transactional: AsyncEngine = attrs.field(
        default=attrs.Factory(
            lambda self: self.engine.execution_options(
                isolation_level=TRANSACTION_ISOLATION[self.engine.dialect.name]
            ),
            takes_self=True,
        )
    )

    @classmethod
    def connect(
        cls, url: str, pool: PoolSettings, on_query: Callable[[float], None] | None = None
    ) -> "SqlDatabase":
        engine = create_engine(url, pool, autocommit=True)
        if on_query is not None:
            _time_statements(engine, on_query)
        return cls(engine)

    def unit_of_work(self, *, atomic: bool = True) -> SqlUnitOfWork:
        engine = self._transactional if atomic else self.engine
        return SqlUnitOfWork(engine.sync_engine, atomic=atomic)

    async def ping(self) -> None:
        await ping(self.engine)

    def pool_stats(self) -> dict[str, int]:
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return {}
        return {"in_use": pool.checkedout(), "idle": pool.checkedin(), "overflow": pool.overflow()}

    async def close(self) -> None:
        await self.engine.dispose()


def _time_statements(engine: AsyncEngine, on_query: Callable[[float], None]) -> None:
    """Report each statement's round trip; the start time rides on the connection's info."""

    def before(connection: Connection, *_: Any) -> None:
        connection.info["cme_query_started"] = time.perf_counter()

    def after(connection: Connection, *_: Any) -> None:
        on_query(time.perf_counter() - connection.info.pop("cme_query_started"))

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
