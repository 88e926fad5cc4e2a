"""The change feed's contract on every adapter: one event per committed write, none otherwise."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cme_adapters.system import Uuid7Generator
from cme_domain.changes import ChangeType
from cme_domain.errors import DuplicateSku, SkusTaken
from cme_domain.product import QUANTITY_MAX, Product, ProductSpec
from cme_domain.stock import StockChange, StockEntry

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
            created.id, spec("EV-1", "2.50", 7), T0 + timedelta(seconds=1), 1, entry_id=IDS.new_id()
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
        assert (
            await uow.products.replace(kept.id, spec("NONE-1"), T0, 5, entry_id=IDS.new_id())
            is None
        )
        assert not await uow.products.delete(kept.id, T0, 5)
    async with database.unit_of_work() as uow:  # atomic, left without commit
        await uow.products.add(Product.new(IDS.new_id(), spec("NONE-2"), T0))
        await uow.products.replace(kept.id, spec("NONE-1", "9.00"), T0, None, entry_id=IDS.new_id())

    batch = await database.change_feed().read(None, 100)

    assert [(c.type, c.product) for c in batch.items] == [(ChangeType.CREATED, kept)]


async def test_a_create_with_stock_records_one_event_beside_its_ledger_entry(
    database: Any,
) -> None:
    stocked = Product.new(IDS.new_id(), spec("INIT-1", quantity=4), T0)
    empty = Product.new(IDS.new_id(), spec("INIT-0", quantity=0), T0)
    async with database.unit_of_work(atomic=False) as uow:
        await uow.products.add(stocked, StockEntry.initial(IDS.new_id(), stocked))
        await uow.products.add(empty, StockEntry.initial(IDS.new_id(), empty))

    batch = await database.change_feed().read(None, 100)

    assert [(c.type, c.product) for c in batch.items] == [
        (ChangeType.CREATED, stocked),
        (ChangeType.CREATED, empty),
    ]


async def test_a_stock_adjustment_records_the_state_it_left(database: Any) -> None:
    product = await create(database, "ADJ-1")
    at = T0 + timedelta(seconds=1)
    async with database.unit_of_work(atomic=False) as uow:
        entry = await uow.products.adjust(
            product.id, StockChange(-1, "sale", "order-1"), IDS.new_id(), at, 1
        )
        after = await uow.products.get(product.id)
    assert entry is not None
    assert after is not None
    assert after.quantity == 0

    batch = await database.change_feed().read(None, 100)

    assert [(c.type, c.version, c.occurred_at, c.product) for c in batch.items] == [
        (ChangeType.CREATED, 1, T0, product),
        (ChangeType.STOCK_ADJUSTED, 2, at, after),
    ]


async def test_a_refused_adjustment_records_nothing(database: Any) -> None:
    product = await create(database, "ADJ-NO")  # quantity 1
    async with database.unit_of_work(atomic=False) as uow:
        for delta, expected in ((-2, None), (QUANTITY_MAX, None), (-1, 7)):
            change = StockChange(delta, "sale", None)
            assert await uow.products.adjust(product.id, change, IDS.new_id(), T0, expected) is None
    async with database.unit_of_work() as uow:  # applied, then rolled back
        change = StockChange(-1, "sale", None)
        assert await uow.products.adjust(product.id, change, IDS.new_id(), T0, None) is not None

    batch = await database.change_feed().read(None, 100)

    assert [c.type for c in batch.items] == [ChangeType.CREATED]


async def test_a_create_batch_records_one_created_event_per_item_in_input_order(
    database: Any,
) -> None:
    candidates = [
        Product.new(IDS.new_id(), spec(sku, quantity=q), T0)
        for sku, q in (("B-3", 0), ("B-1", 2), ("B-2", 5))
    ]
    async with database.unit_of_work() as uow:
        await uow.products.write_batch(candidates, [IDS.new_id() for _ in candidates], upsert=False)
        await uow.commit()

    batch = await database.change_feed().read(None, 100)

    assert [(c.type, c.product) for c in batch.items] == [
        (ChangeType.CREATED, p) for p in candidates
    ]


async def test_an_upsert_batch_records_created_or_updated_per_item_in_input_order(
    database: Any,
) -> None:
    taken = await create(database, "U-2")
    at = T0 + timedelta(seconds=1)
    candidates = [
        Product.new(IDS.new_id(), spec(sku, "3.00", quantity=q), at)
        for sku, q in (("U-3", 1), ("U-2", 9), ("U-1", 0))
    ]
    async with database.unit_of_work() as uow:
        items = await uow.products.write_batch(
            candidates, [IDS.new_id() for _ in candidates], upsert=True
        )
        await uow.commit()

    batch = await database.change_feed().read(None, 100)

    assert [i.created for i in items] == [True, False, True]
    assert [(c.type, c.product_id, c.version, c.product) for c in batch.items] == [
        (ChangeType.CREATED, taken.id, 1, taken),
        (ChangeType.CREATED, items[0].product.id, 1, items[0].product),
        (ChangeType.UPDATED, taken.id, 2, items[1].product),
        (ChangeType.CREATED, items[2].product.id, 1, items[2].product),
    ]
    sequences = [c.sequence for c in batch.items]
    assert sequences == sorted(set(sequences))


async def test_a_refused_batch_records_nothing(database: Any) -> None:
    await create(database, "R-2")
    candidates = [Product.new(IDS.new_id(), spec(s), T0) for s in ("R-1", "R-2")]
    ids = [IDS.new_id() for _ in candidates]
    async with database.unit_of_work() as uow:
        with pytest.raises(SkusTaken):
            await uow.products.write_batch(candidates, ids, upsert=False)
    async with database.unit_of_work() as uow:  # written, then rolled back
        await uow.products.write_batch(
            [Product.new(IDS.new_id(), spec("R-3"), T0)], [IDS.new_id()], upsert=True
        )

    batch = await database.change_feed().read(None, 100)

    assert [c.type for c in batch.items] == [ChangeType.CREATED]


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
