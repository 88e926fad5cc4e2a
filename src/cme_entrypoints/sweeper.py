"""Housekeeping the service does on its own while it runs: expired idempotency records go."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from cme_domain.errors import StorageUnavailable

log = logging.getLogger("cme.sweeper")
PRUNE_INTERVAL_SECONDS: Final = 3600.0


@contextlib.asynccontextmanager
async def pruning(
    prune: Callable[[], Awaitable[int]], interval: float = PRUNE_INTERVAL_SECONDS
) -> AsyncIterator[None]:
    """Run prune() every interval seconds until the block ends.

    Every worker of every pod does it: one DELETE of the expired rows an hour each, which
    finds nothing left to do after the first, and needs no scheduler beside the service.
    """
    task = asyncio.create_task(_every(prune, interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _every(prune: Callable[[], Awaitable[int]], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await prune()
        except StorageUnavailable as error:
            log.warning("idempotency records not pruned: %s", error)
        else:
            if removed:
                log.info("pruned %d expired idempotency records", removed)
