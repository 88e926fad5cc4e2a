"""The change feed's contract on every adapter: one event per committed write, none otherwise."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cme_adapters.system import Uuid7Generator
from cme_domain.changes import ChangeType
from cme_domain.errors import DuplicateSku
from cme_domain.product import Product, ProductSpec

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
IDS = Uuid7Generator()


def spec(sku: str, price: str = "1.00", quantity: int = 1) -> ProductSpec:
    return ProductSpec.parse({"sku": sku, "name": "Lamp", "price": price, "quantity": quantity})


async def create(database: Any, sku: str, at: datetime = T0) -> Product:
    product = Product.new(IDS.new_id(), spec(sku), at)
    async with database.unit_of_work(atomic=False) as uow:
        await uow.products.add(product)
    return product


async def test_each_write_records_one_event_with_the_state_it_left(database: Any) -> None:
    created = await create(database, "EV-1")
    async with database.unit_of_work(atomic=False) as uow:
        replaced = await uow.products.replace(
            created.id, spec("EV-1", "2.50", 7), T0 + timedelta(seconds=1), 1
        )
        assert replaced is not None
        assert await uow.products.delete(created.id, T0 + timedelta(seconds=2), 2)

    batch = await database.change_feed().read(None, 100)

    assert [(c.type, c.version) for c in batch.items] == [
        (ChangeType.CREATED, 1),
        (ChangeType.UPDATED, 2),
        (ChangeType.DELETED, 3),
    ]
    assert [c.product for c in batch.items] == [created, replaced, None]
    assert {c.product_id for c in batch.items} == {created.id}
    assert [c.occurred_at for c in batch.items] == [
        T0,
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=2),
    ]
    sequences = [c.sequence for c in batch.items]
    assert sequences == sorted(set(sequences))
    assert batch.end == sequences[-1]
    assert batch.pruned_through == 0


async def test_writes_that_change_nothing_or_roll_back_record_nothing(database: Any) -> None:
    kept = await create(database, "NONE-1")
    with pytest.raises(DuplicateSku):
        await create(database, "NONE-1")
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.products.replace(kept.id, spec("NONE-1"), T0, 5) is None
        assert not await uow.products.delete(kept.id, T0, 5)
    async with database.unit_of_work() as uow:  # atomic, left without commit
        await uow.products.add(Product.new(IDS.new_id(), spec("NONE-2"), T0))
        await uow.products.replace(kept.id, spec("NONE-1", "9.00"), T0, None)

    batch = await database.change_feed().read(None, 100)

    assert [(c.type, c.product) for c in batch.items] == [(ChangeType.CREATED, kept)]


async def test_a_committed_transaction_records_its_events_in_write_order(database: Any) -> None:
    first, second = (Product.new(IDS.new_id(), spec(s), T0) for s in ("TX-1", "TX-2"))
    async with database.unit_of_work() as uow:
        await uow.products.add(first)
        await uow.products.add(second)
        await uow.commit()

    batch = await database.change_feed().read(None, 100)

    assert [c.product_id for c in batch.items] == [first.id, second.id]


async def test_reading_after_a_cursor_resumes_there_a_limited_number_at_a_time(
    database: Any,
) -> None:
    products = [await create(database, f"CUR-{n}") for n in range(5)]
    feed = database.change_feed()

    first = await feed.read(None, 2)
    rest = await feed.read(first.items[-1].sequence, 100)
    nothing = await feed.read(rest.items[-1].sequence, 100)

    assert [c.product_id for c in first.items + rest.items] == [p.id for p in products]
    assert nothing.items == ()
    assert first.end == rest.end == nothing.end == rest.items[-1].sequence
    assert first.lag(None) == 3
    assert nothing.lag(rest.items[-1].sequence) == 0


async def test_pruning_keeps_every_event_after_the_newest_one_old_enough(database: Any) -> None:
    old = [await create(database, f"OLD-{n}", T0) for n in range(3)]
    new = await create(database, "NEW-1", T0 + timedelta(days=8))
    feed = database.change_feed()
    everything = await feed.read(None, 100)

    removed = await feed.prune(T0 + timedelta(days=1))
    after = await feed.read(None, 100)

    assert removed == len(old)
    assert after.pruned_through == everything.items[2].sequence
    assert [c.product_id for c in after.items] == [new.id]
    assert after.end == everything.end
    assert await feed.prune(T0 + timedelta(days=1)) == 0


async def test_positions_go_on_rising_after_everything_was_pruned(database: Any) -> None:
    await create(database, "GONE-1")
    feed = database.change_feed()
    assert await feed.prune(T0 + timedelta(days=1)) == 1
    emptied = await feed.read(None, 100)
    later = await create(database, "LATER-1")

    batch = await feed.read(emptied.end, 100)

    assert emptied.items == ()
    assert emptied.end == emptied.pruned_through
    assert [c.product_id for c in batch.items] == [later.id]
    assert batch.items[0].sequence > emptied.pruned_through
