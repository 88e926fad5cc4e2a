"""Reservations and the holds they put on products, on memory, SQLite and PostgreSQL alike: the
ports themselves (units of work and repositories), as the use cases call them."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import attrs
import psycopg
import pytest

from cme_adapters.sql.config import PoolSettings
from cme_adapters.system import Uuid7Generator
from cme_domain.listing import ProductQuery
from cme_domain.product import Product, ProductSpec
from cme_domain.reservation import Reservation, ReservationLine, ReservationStatus
from cme_domain.stock import StockChange, StockEntry
from tests.integration.databases import open_database

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
TTL = timedelta(minutes=15)
IDS = Uuid7Generator()
HELD, CONFIRMED = ReservationStatus.HELD, ReservationStatus.CONFIRMED
RELEASED, EXPIRED = ReservationStatus.RELEASED, ReservationStatus.EXPIRED


@attrs.define
class MovableClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> MovableClock:
    """The clock the `database` fixture counts holds by (conftest.py), moved by the tests."""
    return MovableClock(T0)


def make(sku: str, quantity: int = 10) -> Product:
    spec = ProductSpec.parse({"sku": sku, "name": "Lamp", "price": "2.50", "quantity": quantity})
    return Product.new(IDS.new_id(), spec, T0)


async def created(database: Any, *products: Product) -> None:
    async with database.unit_of_work(atomic=False) as uow:
        for product in products:
            await uow.products.add(product, StockEntry.initial(IDS.new_id(), product))


def reservation(
    lines: Sequence[tuple[Product, int]], at: datetime = T0, ttl: timedelta = TTL
) -> Reservation:
    held = tuple(ReservationLine(product.id, quantity) for product, quantity in lines)
    return Reservation(IDS.new_id(), HELD, held, "cart-7", at, at, at + ttl)


async def reserved(database: Any, held: Reservation) -> Reservation:
    """Added as Reserve adds it: its products locked first, in id order."""
    async with database.unit_of_work() as uow:
        await uow.products.lock(sorted(line.product_id for line in held.lines))
        await uow.reservations.add(held)
        await uow.commit()
    return held


async def saved(database: Any, changed: Reservation) -> Reservation:
    async with database.unit_of_work() as uow:
        assert await uow.reservations.get(changed.id, lock=True) is not None
        await uow.products.lock(sorted(line.product_id for line in changed.lines))
        await uow.reservations.save(changed)
        await uow.commit()
    return changed


async def held_by_read(database: Any, product: Product) -> tuple[int, int, int]:
    """The product's `held` as get, get_many and list each read it."""
    async with database.unit_of_work(atomic=False) as uow:
        one = await uow.products.get(product.id)
        many = await uow.products.get_many([product.id])
        page = await uow.products.list(ProductQuery(sku=product.sku))
    assert one is not None
    [listed] = page.items
    return one.held, many[product.id].held, listed.held


async def stored(database: Any, reservation_id: UUID) -> Reservation | None:
    async with database.unit_of_work(atomic=False) as uow:
        found: Reservation | None = await uow.reservations.get(reservation_id)
    return found


async def test_a_reservation_round_trips_with_its_lines_in_request_order(database: Any) -> None:
    lamps = [make(f"RT-{n}") for n in range(3)]
    await created(database, *lamps)
    # Not in id order: the lines come back as they were asked for, not as the keys sort.
    held = await reserved(database, reservation([(lamps[2], 1), (lamps[0], 3), (lamps[1], 2)]))
    assert await stored(database, held.id) == held
    assert await stored(database, uuid4()) is None
    async with database.unit_of_work() as uow:
        assert await uow.reservations.get(held.id, lock=True) == held
        assert await uow.reservations.get(uuid4(), lock=True) is None


async def test_a_reservation_is_rolled_back_with_its_unit_of_work(database: Any) -> None:
    lamp = make("RB-1")
    await created(database, lamp)
    held = reservation([(lamp, 4)])
    async with database.unit_of_work() as uow:
        await uow.products.lock([lamp.id])
        await uow.reservations.add(held)
    assert await stored(database, held.id) is None
    assert await held_by_read(database, lamp) == (0, 0, 0)


async def test_held_is_the_sum_of_the_live_holds_until_the_clock_passes_each_expiry(
    database: Any, clock: MovableClock
) -> None:
    lamp, other, never = make("HELD-1"), make("HELD-2"), make("HELD-3")
    await created(database, lamp, other, never)
    await reserved(database, reservation([(lamp, 2), (other, 1)], ttl=timedelta(minutes=5)))
    await reserved(database, reservation([(lamp, 3)], ttl=timedelta(minutes=10)))
    assert await held_by_read(database, lamp) == (5, 5, 5)
    assert await held_by_read(database, other) == (1, 1, 1)
    assert await held_by_read(database, never) == (0, 0, 0)
    # A hold changes no product's own fields: not its quantity, version or updated_at.
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.products.get(lamp.id) == attrs.evolve(lamp, held=5)
        page = await uow.products.list(ProductQuery(limit=10))
    assert {p.sku: p.held for p in page.items} == {"HELD-1": 5, "HELD-2": 1, "HELD-3": 0}
    clock.at = T0 + timedelta(minutes=5)  # at expires_at a hold has stopped
    assert await held_by_read(database, lamp) == (3, 3, 3)
    assert await held_by_read(database, other) == (0, 0, 0)
    clock.at = T0 + timedelta(minutes=10, microseconds=1)
    assert await held_by_read(database, lamp) == (0, 0, 0)


@pytest.mark.parametrize("ended", [RELEASED, CONFIRMED])
async def test_a_reservation_saved_as_ended_stops_holding_at_once(
    database: Any, ended: ReservationStatus
) -> None:
    lamp = make("END-1")
    await created(database, lamp)
    kept = await reserved(database, reservation([(lamp, 1)]))
    gone = await reserved(database, reservation([(lamp, 4)]))
    assert await held_by_read(database, lamp) == (5, 5, 5)
    later = T0 + timedelta(seconds=30)
    await saved(database, gone.moved_to(ended, later))
    assert await held_by_read(database, lamp) == (1, 1, 1)
    assert await stored(database, gone.id) == attrs.evolve(gone, state=ended, updated_at=later)
    assert await stored(database, kept.id) == kept
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.reservations.held_units() == 1


async def test_an_extension_moves_the_holds_end_later_or_sooner(
    database: Any, clock: MovableClock
) -> None:
    lamp, other = make("EXT-1"), make("EXT-2")
    await created(database, lamp, other)
    held = await reserved(database, reservation([(lamp, 2), (other, 1)], ttl=timedelta(minutes=5)))
    longer = await saved(database, held.extended(timedelta(minutes=20), T0 + timedelta(minutes=1)))
    assert await stored(database, held.id) == longer
    clock.at = T0 + timedelta(minutes=10)  # past the first expiry, before the new one
    assert await held_by_read(database, lamp) == (2, 2, 2)
    assert await held_by_read(database, other) == (1, 1, 1)
    shorter = await saved(database, longer.extended(timedelta(minutes=1), clock.at))
    clock.at = shorter.expires_at
    assert await held_by_read(database, lamp) == (0, 0, 0)
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.reservations.held_units() == 0


async def _adjust(uow: Any, product: Product, delta: int, *, locked: bool = False) -> Any:
    change = StockChange(delta, "sale" if delta < 0 else "restock", None)
    at = T0 + timedelta(seconds=1)
    return await uow.products.adjust(
        product.id, change, IDS.new_id(), at, None, holds_locked=locked
    )


async def test_the_unlocked_writes_that_could_take_held_stock_write_nothing_on_a_held_product(
    database: Any,
) -> None:
    lamp = make("GUARD-1", quantity=10)
    await created(database, lamp)
    await reserved(database, reservation([(lamp, 3)]))
    at = T0 + timedelta(seconds=1)
    spec = attrs.evolve(lamp.spec, quantity=2)
    async with database.unit_of_work(atomic=False) as uow:
        assert await _adjust(uow, lamp, -1) is None
        assert await uow.products.replace(lamp.id, spec, at, None, entry_id=IDS.new_id()) is None
        assert await uow.products.delete(lamp.id, at, None) is False
        current = await uow.products.get(lamp.id)
        assert current == attrs.evolve(lamp, held=3)
        # Adding stock takes nothing held: it needs no lock.
        entry = await _adjust(uow, lamp, +4)
        assert (entry.quantity_after, entry.version_after) == (14, 2)


async def test_with_the_holds_locked_those_writes_apply_on_a_held_product(database: Any) -> None:
    lamp = make("LOCKED-1", quantity=10)
    await created(database, lamp)
    await reserved(database, reservation([(lamp, 3)]))
    at = T0 + timedelta(seconds=1)
    async with database.unit_of_work() as uow:
        await uow.products.lock([lamp.id])
        entry = await _adjust(uow, lamp, -7, locked=True)
        assert (entry.quantity_after, entry.version_after) == (3, 2)
        spec = attrs.evolve(lamp.spec, quantity=5)
        replaced = await uow.products.replace(
            lamp.id, spec, at, 2, entry_id=IDS.new_id(), holds_locked=True
        )
        assert (replaced.quantity, replaced.version) == (5, 3)
        await uow.commit()
    async with database.unit_of_work() as uow:
        await uow.products.lock([lamp.id])
        assert await uow.products.delete(lamp.id, at, 3, holds_locked=True) is True
        await uow.commit()
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.products.get(lamp.id) is None


async def test_once_every_hold_has_run_out_the_unlocked_writes_apply_again(database: Any) -> None:
    lamp = make("RANOUT-1", quantity=10)
    await created(database, lamp)
    held = await reserved(database, reservation([(lamp, 3)], ttl=timedelta(minutes=1)))
    at = held.expires_at  # the write's own time decides, as for a read
    async with database.unit_of_work(atomic=False) as uow:
        change = StockChange(-10, "sale", None)
        entry = await uow.products.adjust(lamp.id, change, IDS.new_id(), at, None)
        assert entry.quantity_after == 0
        assert await uow.products.delete(lamp.id, at, None) is True


@pytest.mark.parametrize("ended", [CONFIRMED, RELEASED])
async def test_once_its_last_hold_ends_a_product_is_written_unlocked_again(
    database: Any, ended: ReservationStatus
) -> None:
    lamp, desk = make("ENDED-1", quantity=10), make("ENDED-2", quantity=10)
    await created(database, lamp, desk)
    first = await reserved(database, reservation([(lamp, 3), (desk, 1)]))
    second = await reserved(database, reservation([(desk, 2)], ttl=2 * TTL))
    await saved(database, first.moved_to(ended, T0))
    async with database.unit_of_work(atomic=False) as uow:
        # No hold is left on the lamp: the one-statement write applies.
        assert (await _adjust(uow, lamp, -10)).quantity_after == 0
        # The desk is still held by the second: its write still waits for the locked way.
        assert await _adjust(uow, desk, -1) is None
    await saved(database, second.moved_to(RELEASED, T0))
    async with database.unit_of_work(atomic=False) as uow:
        assert (await _adjust(uow, desk, -10)).quantity_after == 0


async def test_expire_marks_only_the_held_reservations_whose_time_ran_out(database: Any) -> None:
    lamp = make("SWEEP-1")
    await created(database, lamp)
    ran_out = await reserved(database, reservation([(lamp, 1)], ttl=timedelta(minutes=1)))
    running = await reserved(database, reservation([(lamp, 2)], ttl=timedelta(minutes=10)))
    released = await reserved(database, reservation([(lamp, 3)], ttl=timedelta(minutes=1)))
    released = await saved(database, released.moved_to(RELEASED, T0 + timedelta(seconds=5)))
    now = T0 + timedelta(minutes=5)
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.reservations.expire(now) == 1
        assert await uow.reservations.expire(now) == 0
    assert await stored(database, ran_out.id) == ran_out.moved_to(EXPIRED, now)
    assert await stored(database, running.id) == running
    assert await stored(database, released.id) == released


async def test_prune_deletes_only_the_ended_reservations_last_updated_before_the_cutoff(
    database: Any,
) -> None:
    lamp = make("PRUNE-1")
    await created(database, lamp)
    old = await reserved(database, reservation([(lamp, 1)]))
    await saved(database, old.moved_to(CONFIRMED, T0 + timedelta(minutes=1)))
    recent = await reserved(database, reservation([(lamp, 1)]))
    recent = await saved(database, recent.moved_to(RELEASED, T0 + timedelta(hours=2)))
    held = await reserved(database, reservation([(lamp, 2)], ttl=timedelta(days=1)))
    expired = await reserved(database, reservation([(lamp, 1)], ttl=timedelta(minutes=1)))
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.reservations.expire(T0 + timedelta(minutes=2)) == 1
        assert await uow.reservations.prune(T0 + timedelta(hours=1)) == 2
        assert await uow.reservations.prune(T0 + timedelta(hours=1)) == 0
    assert await stored(database, old.id) is None
    assert await stored(database, expired.id) is None
    assert await stored(database, recent.id) == recent
    assert await stored(database, held.id) == held  # held is never pruned, however old


async def test_held_units_counts_every_live_line_at_the_clock(
    database: Any, clock: MovableClock
) -> None:
    lamp, other = make("UNITS-1"), make("UNITS-2")
    await created(database, lamp, other)
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.reservations.held_units() == 0
    await reserved(database, reservation([(lamp, 2), (other, 5)], ttl=timedelta(minutes=1)))
    await reserved(database, reservation([(other, 3)], ttl=timedelta(minutes=2)))
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.reservations.held_units() == 10
        clock.at = T0 + timedelta(minutes=1)
        assert await uow.reservations.held_units() == 3
        clock.at = T0 + timedelta(minutes=2)
        assert await uow.reservations.held_units() == 0


# PostgreSQL: a write that waited for a reservation's row lock must see the hold it waited for.


async def _waiting_on_a_lock(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as watcher:
        for _ in range(500):
            cursor = await watcher.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = await cursor.fetchone()
            if row is not None and row[0] > 0:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the unlocked write never waited for the reservation's lock")


async def _take_all(database: Any, product: Product, write: str, now: datetime) -> object:
    """The unlocked write that would take all of the product's stock."""
    async with database.unit_of_work(atomic=False) as uow:
        if write == "adjust":
            change = StockChange(-product.quantity, "sale", None)
            return await uow.products.adjust(product.id, change, IDS.new_id(), now, None)
        if write == "replace":
            spec = attrs.evolve(product.spec, quantity=0)
            return await uow.products.replace(product.id, spec, now, None, entry_id=IDS.new_id())
        return await uow.products.delete(product.id, now, None)


@pytest.mark.parametrize(
    ("write", "refused"), [("adjust", None), ("replace", None), ("delete", False)]
)
async def test_on_postgresql_an_unlocked_write_that_waited_for_a_hold_to_commit_takes_nothing(
    empty_postgres_url: str, write: str, refused: object
) -> None:
    database = await open_database(empty_postgres_url, PoolSettings(size=4))
    try:
        now = datetime.now(UTC)
        lamp = attrs.evolve(make(f"RACE-{write}", quantity=5), created_at=now, updated_at=now)
        await created(database, lamp)
        hold = reservation([(lamp, 5)], at=now)
        async with database.unit_of_work() as holder:
            await holder.products.lock([lamp.id])
            await holder.reservations.add(hold)
            # Started now, its statement's snapshot is from before the hold: it reads the row
            # free of holds, then waits for the holder's lock on it.
            taking = asyncio.create_task(_take_all(database, lamp, write, now))
            await _waiting_on_a_lock(empty_postgres_url)
            await holder.commit()
        assert await asyncio.wait_for(taking, 10) == refused
        async with database.unit_of_work(atomic=False) as uow:
            assert await uow.products.get(lamp.id) == attrs.evolve(lamp, held=5)
    finally:
        await database.close()
