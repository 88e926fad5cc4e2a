"""The service prunes expired idempotency records on its own, and an outage does not stop it."""

import asyncio

import pytest

from cme_domain.errors import StorageUnavailable
from cme_entrypoints.sweeper import pruning

pytestmark = pytest.mark.anyio


async def test_prune_runs_every_interval_until_the_block_ends_and_survives_an_outage() -> None:
    calls: list[int] = []

    async def prune() -> int:
        calls.append(len(calls))
        if len(calls) == 2:
            raise StorageUnavailable("down")
        return 1

    async with pruning(prune, interval=0.01):
        await asyncio.sleep(0.1)
    ran = len(calls)
    assert ran >= 4  # the second call's outage did not end the loop
    await asyncio.sleep(0.05)
    assert len(calls) == ran  # nothing runs once the block has ended
