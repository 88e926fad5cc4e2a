"""The change feed on SQLite: events positioned by id, which is commit order there.

Each event gets its position as its write inserts it (migration 0006), so reading the feed
only reads: it never waits for the one writer's lock.
"""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from cme_adapters.sql import outbox
from cme_adapters.sql.engine import outages_as_unavailable
from cme_domain.changes import ChangeBatch


class SqlChangeFeed:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine  # in autocommit: each statement below commits on its own

    async def read(self, after: int | None, limit: int) -> ChangeBatch:
        async with outages_as_unavailable(), self._engine.connect() as db:
            params = {"after": after or 0, "limit": limit}
            rows = (await db.execute(outbox.READ, params)).all()
            pruned, newest = (await db.execute(outbox.BOUNDS)).one()
        items = tuple(outbox.change_of(row) for row in rows)
        return ChangeBatch(items, pruned, max(newest or 0, pruned))

    async def newest(self) -> int | None:
        """The newest event's id: what a watch for other processes' commits asks (notices.py)."""
        async with outages_as_unavailable(), self._engine.connect() as db:
            newest: int | None = (await db.execute(outbox.NEWEST_ID)).scalar()
        return newest

    async def prune(self, before: datetime) -> int:
        removed = 0
        async with outages_as_unavailable(), self._engine.connect() as db:
            through = (await db.execute(outbox.PRUNE_THROUGH, {"before": before})).scalar()
            if through is not None:
                await db.execute(outbox.RAISE_HORIZON, {"through": through})
            while True:
                result = await db.execute(outbox.PRUNE, {"batch": outbox.PRUNE_BATCH})
                removed += result.rowcount
                if result.rowcount < outbox.PRUNE_BATCH:
                    return removed
