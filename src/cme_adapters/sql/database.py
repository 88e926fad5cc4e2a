"""The SQL database as the app sees it: units of work, a health probe, and shutdown."""

import time
from collections.abc import Callable
from typing import Any

import attrs
from sqlalchemy import Connection, QueuePool, event
from sqlalchemy.ext.asyncio import AsyncEngine

from cme_adapters.sql.engine import PoolSettings, create_engine, ping
from cme_adapters.sql.uow import SqlUnitOfWork


@attrs.define
class SqlDatabase:
    engine: AsyncEngine
    # Reads need no transaction: in autocommit a lookup is one round trip, not BEGIN, SELECT
    # and ROLLBACK. It shares the engine's pool; SQLAlchemy resets the mode on check-in.
    _readers: AsyncEngine = attrs.field(
        default=attrs.Factory(
            lambda self: self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            takes_self=True,
        )
    )

    @classmethod
    def connect(
        cls, url: str, pool: PoolSettings, on_query: Callable[[float], None] | None = None
    ) -> "SqlDatabase":
        engine = create_engine(url, pool)
        if on_query is not None:
            _time_statements(engine, on_query)
        return cls(engine)

    def unit_of_work(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._readers if read_only else self.engine)

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
