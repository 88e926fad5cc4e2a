"""Housekeeping the service does on its own while it runs: expired idempotency records go,
reservations are tidied."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from cme_domain.errors import StorageUnavailable

log = logging.getLogger("cme.sweeper")
PRUNE_INTERVAL_SECONDS: Final = 3600.0
# Often enough that the units-held gauge is current and expired reservations are counted soon
# after they expire; their stock was available again at expires_at all the same.
RESERVATION_SWEEP_SECONDS: Final = 30.0
# The webhook lag gauge is as fresh as this; the log's trimming needs far less.
WEBHOOK_SWEEP_SECONDS: Final = 15.0


@contextlib.asynccontextmanager
async def pruning(
    prune: Callable[[], Awaitable[int]],
    interval: float = PRUNE_INTERVAL_SECONDS,
    what: str = "expired idempotency records",
) -> AsyncIterator[None]:
    """Run prune() every interval seconds until the block ends.

    Every worker of every pod does it: one DELETE of the expired rows an hour each, which
    finds nothing left to do after the first, and needs no scheduler beside the service.
    """
    task = asyncio.create_task(_every(prune, interval, what))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _every(prune: Callable[[], Awaitable[int]], interval: float, what: str) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await prune()
        except StorageUnavailable as error:
            log.warning("%s not pruned: %s", what, error)
        else:
            if removed:
                log.info("pruned %d %s", removed, what)
