"""The SQL database as the app sees it: units of work, a health probe, and shutdown."""

import attrs
from sqlalchemy.ext.asyncio import AsyncEngine

from cme_adapters.sql.engine import PoolSettings, create_engine, ping
from cme_adapters.sql.uow import SqlUnitOfWork


@attrs.define
class SqlDatabase:
    engine: AsyncEngine

    @classmethod
    def connect(cls, url: str, pool: PoolSettings) -> "SqlDatabase":
        return cls(create_engine(url, pool))

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)

    async def ping(self) -> None:
        await ping(self.engine)

    def pool_stats(self) -> dict[str, int]:
        pool = self.engine.pool
        checked_out = getattr(pool, "checkedout", lambda: 0)()
        checked_in = getattr(pool, "checkedin", lambda: 0)()
        return {"in_use": checked_out, "idle": checked_in}

    async def close(self) -> None:
        await self.engine.dispose()
