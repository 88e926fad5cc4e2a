"""The in-memory change feed: the store's events in commit order."""

from datetime import datetime

import attrs

from cme_adapters.memory.store import InMemoryStore
from cme_domain.changes import ChangeBatch


@attrs.define
class InMemoryChangeFeed:
    store: InMemoryStore

    async def read(self, after: int | None, limit: int) -> ChangeBatch:
        start = after or 0
        items = [c for c in self.store.changes if c.sequence > start][:limit]
        end = max(self.store.last_position, self.store.pruned_through)
        return ChangeBatch(tuple(items), self.store.pruned_through, end)

    async def prune(self, before: datetime) -> int:
        old = [c.sequence for c in self.store.changes if c.occurred_at < before]
        if not old:
            return 0
        through = max(old)
        kept = [c for c in self.store.changes if c.sequence > through]
        removed = len(self.store.changes) - len(kept)
        self.store.changes[:] = kept
        self.store.pruned_through = max(self.store.pruned_through, through)
        return removed
