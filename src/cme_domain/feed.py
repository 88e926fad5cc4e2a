"""The change feed's use cases: read (and wait for) events after a cursor, prune old ones."""

import time
from datetime import timedelta

import attrs

from cme_domain.changes import ChangeBatch, ChangeFeed, ChangeNotices
from cme_domain.errors import ChangesPruned, CursorAhead
from cme_domain.ports import Clock


@attrs.frozen
class ReadChanges:
    feed: ChangeFeed
    notices: ChangeNotices

    async def __call__(self, after: int | None, limit: int, wait_seconds: float = 0) -> ChangeBatch:
        """The events after `after`; with none yet, wait up to wait_seconds for the first.

        Raise ChangesPruned when retention has deleted events the cursor has not seen, and
        CursorAhead for a position no answer has held.
        """
        deadline = time.monotonic() + wait_seconds
        while True:
            # Taken before the read: a notice that lands between the read and the wait
            # then ends the wait at once instead of being missed.
            heard = self.notices.heard()
            batch = await self.feed.read(after, limit)
            # Checked after the read: a prune that ran during it makes this fail, never pass.
            if after is not None and after < batch.pruned_through:
                raise ChangesPruned(after, batch.pruned_through)
            if after is not None and after > batch.end:
                raise CursorAhead(f"the feed has not reached position {after}")
            remaining = deadline - time.monotonic()
            if batch.items or remaining <= 0:
                return batch
            if not await self.notices.wait(heard, remaining):
                return batch


@attrs.frozen
class LatestCursor:
    """The feed's current end, for a consumer that has just taken a full snapshot."""

    feed: ChangeFeed

    async def __call__(self) -> int:
        return (await self.feed.read(None, 1)).end


@attrs.frozen
class PruneChanges:
    feed: ChangeFeed
    clock: Clock
    retention: timedelta

    async def __call__(self) -> int:
        return await self.feed.prune(self.clock.now() - self.retention)
