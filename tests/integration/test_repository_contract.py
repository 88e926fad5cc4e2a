"""One contract for every adapter: in-memory, SQLite and PostgreSQL must behave identically."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest

from cme_adapters.system import Uuid7Generator
from cme_domain.errors import DuplicateSku, IdempotentRequestInProgress
from cme_domain.listing import ProductQuery, SortField, SortOrder, sort_value
from cme_domain.ports import IdempotencyRecord
from cme_domain.product import Product, ProductSpec

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
IDS = Uuid7Generator()


def make(sku: str, name: str = "Lamp", price: str = "1.00", at: datetime = T0) -> Product:
    spec = ProductSpec.parse({"sku": sku, "name": name, "price": price, "quantity": 1})
    return Product.new(IDS.new_id(), spec, at)


async def add_all(database: Any, products: list[Product]) -> None:
    async with database.unit_of_work() as uow:
        for product in products:
            await uow.products.add(product)
        await uow.commit()


async def test_a_product_round_trips_exactly(database: Any) -> None:
    product = make("RT-1", name="Ünïcode ☃ name", price="9999999999.99")
    product = Product(**_fields(product, description="d" * 4000))
    await add_all(database, [product])
    async with database.unit_of_work() as uow:
        assert await uow.products.get(product.id) == product
        assert await uow.products.get(uuid4()) is None


async def test_get_many_finds_the_products_that_exist_in_one_call(database: Any) -> None:
    products = [make(f"MANY-{n}") for n in range(1500)]  # past SQLite's old 999-variable cap
    await add_all(database, products)
    wanted = [p.id for p in reversed(products)] + [uuid4()]
    async with database.unit_of_work() as uow:
        found = await uow.products.get_many(wanted)
        assert found == {p.id: p for p in products}
        assert await uow.products.get_many([uuid4()]) == {}
        assert await uow.products.get_many([]) == {}


def _fields(product: Product, **changes: Any) -> dict[str, Any]:
    import attrs

    return {**attrs.asdict(product), **changes}


async def test_uncommitted_writes_are_rolled_back(database: Any) -> None:
    product = make("RB-1")
    async with database.unit_of_work() as uow:
        await uow.products.add(product)
    async with database.unit_of_work() as uow:
        assert await uow.products.get(product.id) is None


async def test_writes_outside_a_transaction_stand_on_their_own(database: Any) -> None:
    kept, refused = make("NA-1"), make("NA-1")
    async with database.unit_of_work(atomic=False) as uow:
        await uow.products.add(kept)
        with pytest.raises(DuplicateSku):
            await uow.products.add(refused)
        # A failed statement does not undo the one before it, and nothing waits for commit().
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.products.get(kept.id) == kept
        assert await uow.products.get(refused.id) is None


async def test_an_atomic_unit_of_work_sees_its_own_writes_before_commit(database: Any) -> None:
    product = make("OWN-1")
    async with database.unit_of_work() as uow:
        await uow.products.add(product)
        assert await uow.products.get(product.id) == product
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.products.get(product.id) is None


async def test_a_duplicate_sku_is_refused(database: Any) -> None:
    await add_all(database, [make("DUP")])
    with pytest.raises(DuplicateSku):
        await add_all(database, [make("DUP")])


async def test_replace_is_a_compare_and_set_on_version(database: Any) -> None:
    product = make("CAS")
    await add_all(database, [product])
    spec = ProductSpec.parse({"sku": "CAS", "name": "New", "price": "2.50", "quantity": 5})
    later = T0 + timedelta(seconds=1)
    async with database.unit_of_work() as uow:
        assert await uow.products.replace(product.id, spec, later, 2, entry_id=IDS.new_id()) is None
        revised = await uow.products.replace(product.id, spec, later, 1, entry_id=IDS.new_id())
        await uow.commit()
    assert revised == product.revised(spec, later)
    async with database.unit_of_work() as uow:
        assert await uow.products.get(product.id) == revised
        assert await uow.products.replace(uuid4(), spec, later, None, entry_id=IDS.new_id()) is None


async def test_replace_onto_another_products_sku_is_refused(database: Any) -> None:
    first, second = make("ONE"), make("TWO")
    await add_all(database, [first, second])
    with pytest.raises(DuplicateSku):
        async with database.unit_of_work() as uow:
            await uow.products.replace(second.id, first.spec, T0, None, entry_id=IDS.new_id())
    async with database.unit_of_work() as uow:
        assert await uow.products.get(second.id) == second


async def test_delete_honours_the_expected_version(database: Any) -> None:
    product = make("DEL")
    await add_all(database, [product])
    async with database.unit_of_work() as uow:
        assert not await uow.products.delete(product.id, T0, expected_version=3)
        assert await uow.products.delete(product.id, T0, expected_version=1)
        assert not await uow.products.delete(product.id, T0, expected_version=None)
        await uow.commit()


@pytest.mark.parametrize("sort", list(SortField))
@pytest.mark.parametrize("order", list(SortOrder))
async def test_keyset_pages_follow_the_same_total_order(
    database: Any, sort: SortField, order: SortOrder
) -> None:
    # Ties on every sort key, names that differ only in case and accents, equal timestamps.
    names = ["b", "B", "a", "é", "e", "Z", "b", "aa", "a b", "_"]
    prices = ["1.00", "1.00", "0.10", "10.00", "2.50", "1.00", "0.00", "2.50", "9.99", "1.00"]
    products = [
        make(f"K{n}", names[n], prices[n], T0 + timedelta(microseconds=n % 3))
        for n in range(len(names))
    ]
    await add_all(database, products)
    expected = sorted(products, key=lambda p: (sort_value(p, sort), p.id))
    if order is SortOrder.DESC:
        expected.reverse()
    seen: list[Product] = []
    query = ProductQuery(limit=3, sort=sort, order=order)
    while True:
        async with database.unit_of_work() as uow:
            page = await uow.products.list(query)
        seen += page.items
        if page.next is None:
            break
        query = ProductQuery(limit=3, sort=sort, order=order, after=page.next)
    assert [p.sku for p in seen] == [p.sku for p in expected]


async def test_filters_select_the_same_products(database: Any) -> None:
    await add_all(
        database,
        [
            make("F1", "Red Lamp", "5.00"),
            make("F2", "blue lamp", "15.00"),
            make("F3", "100% wool", "25.00"),
            make("F4", "under_score", "35.00"),
        ],
    )

    async def skus(**filters: Any) -> list[str]:
        async with database.unit_of_work() as uow:
            page = await uow.products.list(ProductQuery(sort=SortField.PRICE, **filters))
        return [p.sku for p in page.items]

    assert await skus(sku="F2") == ["F2"]
    assert await skus(name_contains="LAMP") == ["F1", "F2"]
    assert await skus(name_contains="%") == ["F3"]
    assert await skus(name_contains="_") == ["F4"]
    assert await skus(min_price=Decimal("15"), max_price=Decimal("25")) == ["F2", "F3"]


async def test_name_search_folds_case_in_all_of_unicode_alike_on_every_adapter(
    database: Any,
) -> None:
    # The one definition of case-insensitive `q` (README, search_fold): NFKC and full case
    # folding, accents kept. Each store answers the same, whatever its collation.
    await add_all(
        database,
        [
            make("U1", "ÉCLAIR au café", "1.00"),
            make("U2", "éclair", "2.00"),
            make("U3", "Straße", "3.00"),
            make("U4", "STRASSE", "4.00"),
            make("U5", "İstanbul rug", "5.00"),
            make("U6", "Ωmega watch", "6.00"),
            make("U7", "ΌΣΟΣ", "7.00"),
            make("U8", "Ｃａｆé table", "8.00"),
        ],
    )

    async def skus(q: str) -> list[str]:
        async with database.unit_of_work() as uow:
            page = await uow.products.list(ProductQuery(sort=SortField.PRICE, name_contains=q))
        return [p.sku for p in page.items]

    assert await skus("ÉCLAIR") == ["U1", "U2"]
    assert await skus("éclair") == ["U1", "U2"]
    assert await skus("eclair") == []  # accents are kept
    assert await skus("AU CAF") == ["U1"]
    assert await skus("straße") == ["U3", "U4"]
    assert await skus("STRASSE") == ["U3", "U4"]
    assert await skus("ß") == ["U3", "U4"]
    assert await skus("ωMEGA") == ["U6"]
    assert await skus("όσος") == ["U7"]  # the final sigma folds as any other
    assert await skus("café") == ["U1", "U8"]  # fullwidth letters are letters
    assert await skus("İSTANBUL") == ["U5"]
    assert await skus("istanbul") == []  # İ folds to i with a dot above, as Unicode says


async def test_idempotency_records_expire_and_collide(database: Any) -> None:
    product = make("IDEM")
    await add_all(database, [product])
    record = IdempotencyRecord("alice", "key-1", "f" * 64, product.id, T0, T0 + timedelta(hours=1))
    async with database.unit_of_work() as uow:
        await uow.idempotency.add(record)
        await uow.commit()
    async with database.unit_of_work() as uow:
        assert await uow.idempotency.find("alice", "key-1", T0) == record
        assert await uow.idempotency.find("bob", "key-1", T0) is None
        assert await uow.idempotency.find("alice", "key-1", T0 + timedelta(hours=2)) is None
    with pytest.raises(IdempotentRequestInProgress):
        async with database.unit_of_work() as uow:
            await uow.idempotency.add(record)
    renewed = IdempotencyRecord(
        "alice", "key-1", "e" * 64, UUID(int=1), T0 + timedelta(hours=2), T0 + timedelta(hours=3)
    )
    async with database.unit_of_work() as uow:
        await uow.idempotency.add(renewed)
        await uow.commit()
    async with database.unit_of_work() as uow:
        assert await uow.idempotency.find("alice", "key-1", T0 + timedelta(hours=2)) == renewed


async def test_pruning_removes_exactly_the_expired_idempotency_records(database: Any) -> None:
    product = make("PRUNE")
    await add_all(database, [product])
    records = [
        IdempotencyRecord("alice", f"key-{h}", "f" * 64, product.id, T0, T0 + timedelta(hours=h))
        for h in (1, 2, 3)
    ]
    async with database.unit_of_work() as uow:
        for record in records:
            await uow.idempotency.add(record)
        await uow.commit()
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.idempotency.prune(T0 + timedelta(hours=2)) == 2
        assert await uow.idempotency.prune(T0 + timedelta(hours=2)) == 0
        now = T0 + timedelta(minutes=150)
        assert await uow.idempotency.find("alice", "key-3", now) == records[2]
        assert await uow.idempotency.find("alice", "key-2", T0) is None


async def test_the_cursor_secret_is_made_once_and_then_always_the_same(database: Any) -> None:
    first = await database.cursor_secret()
    assert len(first) >= 48
    assert await database.cursor_secret() == first


# Names that hold "lamp" and names that do not, interleaved differently in every sort order,
# with ties on each sort key so that a boundary can fall between rows that differ by id only.
SEARCHED = [
    ("Desk lamp", "3.00", 0),
    ("Chair", "1.00", 0),
    ("LAMPSHADE", "3.00", 1),
    ("Table", "9.00", 2),
    ("clamp", "0.50", 2),
    ("Rug", "3.00", 3),
    ("Desk lamp", "7.25", 4),
    ("Mirror", "0.50", 4),
    ("Vase", "12.00", 5),
    ("Floor Lamp", "1.00", 6),
    ("Clock", "7.25", 7),
    ("Kettle", "2.00", 7),
    ("lamp", "4.00", 8),
    ("Mug", "4.00", 9),
]


@pytest.mark.parametrize("sort", list(SortField))
@pytest.mark.parametrize("order", list(SortOrder))
async def test_q_pages_are_the_same_whatever_part_of_the_order_is_walked_first(
    database: Any, sort: SortField, order: SortOrder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL walks a bounded stretch of the sort order before asking the trigram index
    (cme_adapters.postgres.search); shortened here, so that matches lie before, inside and past
    it and every cursor lands somewhere else relative to it. Other stores ignore the setting."""
    from cme_adapters.postgres import search

    products = [
        make(f"S{n}", name, price, T0 + timedelta(microseconds=tick))
        for n, (name, price, tick) in enumerate(SEARCHED)
    ]
    await add_all(database, products)
    ordered = sorted(products, key=lambda p: (sort_value(p, sort), p.id))
    if order is SortOrder.DESC:
        ordered.reverse()
    filters: list[dict[str, Any]] = [
        {"name_contains": "LAMP"},
        {"name_contains": "lamp", "min_price": Decimal("1.00")},
        {"name_contains": "Lamp", "max_price": Decimal("4.00")},
        {"name_contains": "desk", "min_price": Decimal("3.00"), "max_price": Decimal("7.25")},
        {"name_contains": "nothing"},
    ]
    for walk in (1, 2, 5, 13, 14, 15):
        monkeypatch.setattr(search, "WALK", walk)
        for chosen in filters:
            expected = [p.sku for p in ordered if ProductQuery(**chosen).matches(p)]
            for limit in (1, 2, 3, 20):
                seen: list[str] = []
                query = ProductQuery(limit=limit, sort=sort, order=order, **chosen)
                while True:
                    async with database.unit_of_work() as uow:
                        page = await uow.products.list(query)
                    assert len(page.items) <= limit
                    seen += [p.sku for p in page.items]
                    if page.next is None:
                        break
                    query = attrs.evolve(query, after=page.next)
                assert seen == expected, (walk, chosen, limit)
