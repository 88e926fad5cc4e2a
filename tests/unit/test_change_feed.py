"""The change feed's use cases on the in-memory store: reading, waiting, stopping, retention."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from cme_adapters.memory import InMemoryDatabase
from cme_adapters.notices import Notices
from cme_domain.changes import ChangeType
from cme_domain.errors import ChangesPruned, CursorAhead
from cme_domain.feed import LatestCursor, PruneChanges, ReadChanges
from cme_domain.product import Product, ProductSpec

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 2, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


async def write(db: InMemoryDatabase, n: int, at: datetime = T0) -> Product:
    spec = ProductSpec.parse({"sku": f"FEED-{n}", "name": "Lamp", "price": "1.00", "quantity": 1})
    product = Product.new(UUID(int=n), spec, at)
    async with db.unit_of_work(atomic=False) as uow:
        await uow.products.add(product)
    return product


def reader(db: InMemoryDatabase, notices: Notices | None = None) -> ReadChanges:
    return ReadChanges(db.change_feed(), notices or db.change_notices())


async def test_a_reader_waiting_for_events_is_answered_as_soon_as_one_is_committed() -> None:
    db = InMemoryDatabase()
    end = await LatestCursor(db.change_feed())()
    waiting = asyncio.create_task(reader(db)(end, 10, wait_seconds=10))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    started = time.monotonic()
    product = await write(db, 1)

    batch = await asyncio.wait_for(waiting, 2)

    assert time.monotonic() - started < 0.5
    assert [(c.type, c.product) for c in batch.items] == [(ChangeType.CREATED, product)]


async def test_a_wait_with_nothing_new_ends_empty_when_its_time_is_up() -> None:
    db = InMemoryDatabase()
    started = time.monotonic()

    batch = await reader(db)(None, 10, wait_seconds=0.3)

    assert 0.3 <= time.monotonic() - started < 1.5
    assert batch.items == ()
    assert batch.next_cursor(None) == 0


async def test_stopping_ends_every_wait_at_once_with_what_there_is() -> None:
    db = InMemoryDatabase()
    waits = [asyncio.create_task(reader(db)(None, 10, wait_seconds=30)) for _ in range(3)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    db.change_notices().stop()

    batches = await asyncio.wait_for(asyncio.gather(*waits), 2)

    assert time.monotonic() - started < 0.5
    assert all(b.items == () for b in batches)
    assert (await reader(db)(None, 10, wait_seconds=30)).items == ()  # later waits end too


async def test_without_a_listener_a_wait_polls_and_still_sees_the_event() -> None:
    db = InMemoryDatabase()
    polled = Notices(listening=False, poll_seconds=0.05)
    waiting = asyncio.create_task(reader(db, polled)(None, 10, wait_seconds=5))
    await asyncio.sleep(0.1)
    db.store.notices = Notices(listening=True)  # the writes notify nobody the reader hears
    await write(db, 1)

    batch = await asyncio.wait_for(waiting, 1)

    assert len(batch.items) == 1
    assert polled.heard() == 0


async def test_while_listening_a_wait_still_looks_again_when_a_notice_never_comes() -> None:
    db = InMemoryDatabase()
    listening = Notices(listening=True, safety_poll_seconds=0.05)
    waiting = asyncio.create_task(reader(db, listening)(None, 10, wait_seconds=5))
    await asyncio.sleep(0.1)
    db.store.notices = Notices(listening=True)  # a commit announced to nobody this reader hears
    await write(db, 1)

    batch = await asyncio.wait_for(waiting, 1)

    assert len(batch.items) == 1
    assert listening.heard() == 0


async def test_a_notice_between_the_read_and_the_wait_is_not_missed() -> None:
    notices = Notices(listening=True)
    before = notices.heard()
    notices.notify()

    assert await asyncio.wait_for(notices.wait(before, 30), 0.5)


async def test_a_cursor_older_than_retention_is_refused_and_a_newer_one_is_not() -> None:
    db = InMemoryDatabase()
    await write(db, 1, T0)
    await write(db, 2, T0 + timedelta(days=10))
    prune = PruneChanges(db.change_feed(), FixedClock(T0 + timedelta(days=12)), timedelta(days=7))

    assert await prune() == 1

    with pytest.raises(ChangesPruned):
        await reader(db)(0, 10)
    kept = await reader(db)(1, 10)
    assert [c.sequence for c in kept.items] == [2]
    assert [c.sequence for c in (await reader(db)(None, 10)).items] == [2]


async def test_a_cursor_past_the_end_of_the_feed_is_refused() -> None:
    db = InMemoryDatabase()
    await write(db, 1)

    with pytest.raises(CursorAhead):
        await reader(db)(2, 10)
    assert (await reader(db)(1, 10)).items == ()
