"""The stock half of the repository contract, on memory, SQLite and PostgreSQL alike."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from cme_adapters.system import Uuid7Generator
from cme_domain.errors import SkusTaken
from cme_domain.listing import Keyset
from cme_domain.ports import IdempotencyRecord, LedgerQuery
from cme_domain.product import QUANTITY_MAX, Product, ProductSpec
from cme_domain.stock import StockChange, StockEntry

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
IDS = Uuid7Generator()


def make(sku: str, quantity: int = 5, at: datetime = T0) -> Product:
    spec = ProductSpec.parse({"sku": sku, "name": "Lamp", "price": "1.50", "quantity": quantity})
    return Product.new(IDS.new_id(), spec, at)


def change(delta: int, reason: str = "sale", reference: str | None = None) -> StockChange:
    return StockChange.parse({"delta": delta, "reason": reason, "reference": reference})


async def created(database: Any, product: Product) -> Product:
    async with database.unit_of_work(atomic=False) as uow:
        await uow.products.add(product, StockEntry.initial(IDS.new_id(), product))
    return product


async def ledger(database: Any, product_id: UUID, limit: int = 100) -> list[StockEntry]:
    async with database.unit_of_work(atomic=False) as uow:
        page = await uow.products.stock_entries(product_id, LedgerQuery(limit))
    return list(page.items)


async def test_a_create_writes_its_initial_entry_with_the_product(database: Any) -> None:
    product = await created(database, make("INIT", quantity=7))
    [entry] = await ledger(database, product.id)
    assert (entry.delta, entry.reason, entry.quantity_after, entry.version_after) == (
        7,
        "initial",
        7,
        1,
    )
    assert entry.created_at == T0
    assert entry.reference is None


async def test_an_adjustment_moves_quantity_and_version_and_writes_one_entry(
    database: Any,
) -> None:
    product = await created(database, make("ADJ", quantity=5))
    later = T0 + timedelta(seconds=3)
    entry_id = IDS.new_id()
    async with database.unit_of_work(atomic=False) as uow:
        entry = await uow.products.adjust(
            product.id, change(-3, reference="order-1"), entry_id, later, None
        )
        current = await uow.products.get(product.id)
        assert await uow.products.stock_entry(entry_id) == entry
    assert entry == StockEntry(entry_id, product.id, -3, "sale", "order-1", 2, 2, later)
    assert current is not None
    assert (current.quantity, current.version, current.updated_at) == (2, 2, later)
    assert next(e.id for e in await ledger(database, product.id)) == entry_id


@pytest.mark.parametrize(
    ("delta", "expected_version"),
    [(-6, None), (QUANTITY_MAX - 4, None), (-1, 2)],
    ids=["below-zero", "past-the-limit", "stale-version"],
)
async def test_an_adjustment_that_cannot_apply_writes_nothing(
    database: Any, delta: int, expected_version: int | None
) -> None:
    product = await created(database, make("NOPE", quantity=5))
    async with database.unit_of_work(atomic=False) as uow:
        adjusted = await uow.products.adjust(
            product.id, change(delta), IDS.new_id(), T0, expected_version
        )
        assert adjusted is None
        assert await uow.products.get(product.id) == product
        missing = await uow.products.adjust(uuid4(), change(1), IDS.new_id(), T0, None)
        assert missing is None
    assert len(await ledger(database, product.id)) == 1


async def test_an_adjustment_may_take_the_quantity_to_exactly_its_bounds(database: Any) -> None:
    product = await created(database, make("EDGE", quantity=5))
    async with database.unit_of_work(atomic=False) as uow:
        low = await uow.products.adjust(product.id, change(-5), IDS.new_id(), T0, 1)
        high = await uow.products.adjust(product.id, change(QUANTITY_MAX), IDS.new_id(), T0, 2)
    assert low is not None
    assert low.quantity_after == 0
    assert high is not None
    assert high.quantity_after == QUANTITY_MAX


async def test_replace_writes_a_set_entry_only_when_the_quantity_changes(database: Any) -> None:
    product = await created(database, make("SET", quantity=5))
    later = T0 + timedelta(seconds=1)
    same = ProductSpec.parse({"sku": "SET", "name": "Renamed", "price": "1.50", "quantity": 5})
    more = ProductSpec.parse({"sku": "SET", "name": "Renamed", "price": "1.50", "quantity": 9})
    entry_id = IDS.new_id()
    async with database.unit_of_work(atomic=False) as uow:
        await uow.products.replace(product.id, same, later, None, entry_id=IDS.new_id())
        await uow.products.replace(product.id, more, later, 2, entry_id=entry_id)
    entries = await ledger(database, product.id)
    assert [(e.reason, e.delta, e.quantity_after, e.version_after) for e in entries] == [
        ("set", 4, 9, 3),
        ("initial", 5, 5, 1),
    ]
    assert entries[0].id == entry_id
    assert sum(e.delta for e in entries) == 9


async def test_an_atomic_adjustment_left_uncommitted_writes_nothing(database: Any) -> None:
    product = await created(database, make("UNDO", quantity=5))
    async with database.unit_of_work() as uow:
        await uow.products.adjust(product.id, change(-1), IDS.new_id(), T0, None)
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.products.get(product.id) == product
    assert len(await ledger(database, product.id)) == 1


async def test_the_ledger_pages_newest_first_from_a_keyset(database: Any) -> None:
    product = await created(database, make("PAGE", quantity=50))
    async with database.unit_of_work(atomic=False) as uow:
        for n in range(1, 6):
            at = T0 + timedelta(seconds=n)
            await uow.products.adjust(product.id, change(-1), IDS.new_id(), at, None)
        first = await uow.products.stock_entries(product.id, LedgerQuery(4))
        assert first.next is not None
        rest = await uow.products.stock_entries(product.id, LedgerQuery(4, first.next))
    times = [e.created_at for e in (*first.items, *rest.items)]
    assert times == sorted(times, reverse=True)
    assert len(times) == 6
    assert rest.next is None
    assert first.next == Keyset(first.items[-1].version_after, first.items[-1].id)


async def test_the_ledger_lists_the_latest_applied_first_whatever_its_clock_said(
    database: Any,
) -> None:
    # Two requests race: the one that read the clock first commits second.
    product = await created(database, make("ORDER", quantity=50))
    async with database.unit_of_work(atomic=False) as uow:
        for at in (T0 + timedelta(seconds=2), T0 + timedelta(seconds=1)):
            await uow.products.adjust(product.id, change(-1), IDS.new_id(), at, None)
        whole = await uow.products.stock_entries(product.id, LedgerQuery(10))
        paged: list[StockEntry] = []
        page = await uow.products.stock_entries(product.id, LedgerQuery(1))
        while True:
            paged += page.items
            if page.next is None:
                break
            page = await uow.products.stock_entries(product.id, LedgerQuery(1, page.next))
        current = await uow.products.get(product.id)

    assert current is not None
    assert [e.version_after for e in whole.items] == [3, 2, 1]
    assert [e.quantity_after for e in whole.items] == [48, 49, 50]
    assert whole.items[0].quantity_after == current.quantity
    assert paged == list(whole.items)


async def test_deleting_a_product_deletes_its_ledger(database: Any) -> None:
    product = await created(database, make("GONE", quantity=3))
    entry_id = IDS.new_id()
    async with database.unit_of_work(atomic=False) as uow:
        await uow.products.adjust(product.id, change(1), entry_id, T0, None)
        assert await uow.products.delete(product.id, T0, None)
        assert await uow.products.stock_entry(entry_id) is None
    assert await ledger(database, product.id) == []


async def test_a_create_batch_writes_every_product_and_its_entry(database: Any) -> None:
    candidates = [make(f"B-{n}", quantity=n) for n in range(3)]
    async with database.unit_of_work() as uow:
        items = await uow.products.write_batch(
            candidates, [IDS.new_id() for _ in candidates], upsert=False
        )
        await uow.commit()
    assert [(i.created, i.product) for i in items] == [(True, c) for c in candidates]
    assert [len(await ledger(database, c.id)) for c in candidates] == [0, 1, 1]


async def test_a_create_batch_naming_a_taken_sku_writes_nothing(database: Any) -> None:
    await created(database, make("TAKEN"))
    candidates = [make("FREE-1"), make("TAKEN"), make("FREE-2")]
    async with database.unit_of_work() as uow:
        with pytest.raises(SkusTaken) as refused:
            await uow.products.write_batch(
                candidates, [IDS.new_id() for _ in candidates], upsert=False
            )
    assert refused.value.indexes == (1,)
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.products.get(candidates[0].id) is None
        assert await uow.products.get(candidates[2].id) is None


async def test_an_upsert_batch_creates_new_skus_and_replaces_taken_ones(database: Any) -> None:
    existing = await created(database, make("OLD", quantity=5))
    later = T0 + timedelta(seconds=9)
    candidates = [make("NEW", quantity=2, at=later), make("OLD", quantity=8, at=later)]
    async with database.unit_of_work() as uow:
        items = await uow.products.write_batch(
            candidates, [IDS.new_id() for _ in candidates], upsert=True
        )
        await uow.commit()
    assert [i.created for i in items] == [True, False]
    replaced = items[1].product
    assert (replaced.id, replaced.created_at, replaced.updated_at) == (existing.id, T0, later)
    assert (replaced.version, replaced.quantity) == (2, 8)
    entries = await ledger(database, existing.id)
    assert [(e.reason, e.delta) for e in entries] == [("set", 3), ("initial", 5)]
    assert [(e.reason, e.delta) for e in await ledger(database, items[0].product.id)] == [
        ("initial", 2)
    ]


async def test_an_idempotency_record_keeps_its_outcome(database: Any) -> None:
    record = IdempotencyRecord("o", "k", "f" * 64, uuid4(), T0, T0 + timedelta(days=1), "x" * 500)
    async with database.unit_of_work() as uow:
        await uow.idempotency.add(record)
        await uow.commit()
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.idempotency.find("o", "k", T0) == record
