"""The catalogue's use cases on the in-memory unit of work, with a fake clock and fake ids."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cme_adapters.memory import InMemoryDatabase
from cme_domain.batch import Batch
from cme_domain.batch_use_cases import WriteBatch
from cme_domain.errors import (
    DuplicateSku,
    IdempotencyKeyReused,
    IdempotentProductDeleted,
    IdempotentRequestInProgress,
    InvalidProduct,
    ProductNotFound,
    SkusTaken,
    VersionMismatch,
)
from cme_domain.listing import Page, ProductQuery, SortField, SortOrder, keyset_of
from cme_domain.ports import IdempotencyRecord
from cme_domain.principal import READ_SCOPE, WRITE_SCOPE, MissingScope, Principal
from cme_domain.product import Product, ProductSpec
from cme_domain.stock import StockChange
from cme_domain.stock_use_cases import AdjustStock
from cme_domain.use_cases import (
    CreateProduct,
    DeleteProduct,
    GetProduct,
    ListProducts,
    PatchProduct,
    ReplaceProduct,
)

from .strategies import T0, FakeClock, FakeIds

WRITER = Principal("alice", frozenset({READ_SCOPE, WRITE_SCOPE}))
OTHER_WRITER = Principal("bob", frozenset({WRITE_SCOPE}))
READER = Principal("carol", frozenset({READ_SCOPE}))
NOBODY = Principal("dave", frozenset())
DAY = timedelta(hours=24)
NAME_ALPHABET = "abAB "

Snapshot = tuple[dict[Any, Any], dict[Any, Any], dict[Any, Any], list[Any]]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


class Boom(Exception):
    """Raised on purpose inside a unit of work."""


@attrs.define
class Catalogue:
    """Every use case wired to one in-memory database, one fake clock and one fake id source."""

    db: InMemoryDatabase
    clock: FakeClock
    create: CreateProduct
    get: GetProduct
    listing: ListProducts
    replace: ReplaceProduct
    patch: PatchProduct
    delete: DeleteProduct

    @classmethod
    def build(cls, ids: FakeIds | None = None) -> "Catalogue":
        db, clock, ids = InMemoryDatabase(), FakeClock(), ids or FakeIds()
        uow = db.unit_of_work
        return cls(
            db,
            clock,
            CreateProduct(uow, clock, ids),
            GetProduct(uow),
            ListProducts(uow),
            ReplaceProduct(uow, clock, ids),
            PatchProduct(uow, clock, ids),
            DeleteProduct(uow, clock),
        )

    def snapshot(self) -> Snapshot:
        store = self.db.store
        return (
            dict(store.products),
            dict(store.idempotency),
            dict(store.ledger),
            list(store.changes),
        )

    async def add(self, sku: str = "LAMP-1", **fields: Any) -> Product:
        product, created = await self.create(WRITER, spec(sku, **fields))
        assert created
        return product


def spec(sku: str = "LAMP-1", **fields: Any) -> ProductSpec:
    raw = {"sku": sku, "name": "Desk lamp", "price": "19.90", "quantity": 4, **fields}
    return ProductSpec.parse(raw)


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.build()


pytestmark = pytest.mark.anyio


async def test_a_created_product_is_returned_by_get_with_version_1_and_the_clock_time(
    catalogue: Catalogue,
) -> None:
    product, created = await catalogue.create(WRITER, spec(description="Brass"))
    assert created
    assert product.id == UUID(int=1)
    assert product.spec == spec(description="Brass")
    assert (product.version, product.created_at, product.updated_at) == (1, T0, T0)
    assert await catalogue.get(product.id) == product


async def test_get_of_an_unknown_id_raises_product_not_found(catalogue: Catalogue) -> None:
    await catalogue.add()
    with pytest.raises(ProductNotFound):
        await catalogue.get(UUID(int=99))


async def test_duplicate_sku_is_rejected_and_nothing_is_written(catalogue: Catalogue) -> None:
    await catalogue.add("LAMP-1")
    before = catalogue.snapshot()
    with pytest.raises(DuplicateSku) as caught:
        await catalogue.create(WRITER, spec("LAMP-1", name="Another lamp"))
    assert caught.value.sku == "LAMP-1"
    assert catalogue.snapshot() == before
    assert len(catalogue.db.store.products) == 1


async def test_a_duplicate_sku_with_an_idempotency_key_stores_neither_product_nor_key(
    catalogue: Catalogue,
) -> None:
    await catalogue.add("LAMP-1")
    before = catalogue.snapshot()
    with pytest.raises(DuplicateSku):
        await catalogue.create(WRITER, spec("LAMP-1"), idempotency_key="k1")
    assert catalogue.snapshot() == before
    product, created = await catalogue.create(WRITER, spec("LAMP-2"), idempotency_key="k1")
    assert created
    assert product.sku == "LAMP-2"


async def test_replace_bumps_the_version_keeps_created_at_and_updates_updated_at(
    catalogue: Catalogue,
) -> None:
    original = await catalogue.add()
    catalogue.clock.advance(timedelta(minutes=5))
    new_spec = spec("LAMP-9", name="Floor lamp", price="5", quantity=0, description="Tall")
    replaced = await catalogue.replace(WRITER, original.id, new_spec)
    assert replaced.spec == new_spec
    assert (replaced.id, replaced.version) == (original.id, 2)
    assert replaced.created_at == T0
    assert replaced.updated_at == T0 + timedelta(minutes=5)
    assert await catalogue.get(original.id) == replaced


async def test_replace_with_the_current_expected_version_succeeds(catalogue: Catalogue) -> None:
    original = await catalogue.add()
    first = await catalogue.replace(WRITER, original.id, spec(quantity=1), expected_version=1)
    second = await catalogue.replace(WRITER, original.id, spec(quantity=2), expected_version=2)
    assert (first.version, second.version, second.quantity) == (2, 3, 2)


async def test_replace_with_a_stale_expected_version_raises_version_mismatch_and_changes_nothing(
    catalogue: Catalogue,
) -> None:
    original = await catalogue.add()
    current = await catalogue.replace(WRITER, original.id, spec(quantity=1))
    before = catalogue.snapshot()
    with pytest.raises(VersionMismatch) as caught:
        await catalogue.replace(WRITER, original.id, spec(quantity=7), expected_version=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert catalogue.snapshot() == before
    assert await catalogue.get(original.id) == current


@pytest.mark.parametrize("expected_version", [None, 1])
async def test_replace_of_an_unknown_id_raises_product_not_found(
    catalogue: Catalogue, expected_version: int | None
) -> None:
    await catalogue.add()
    before = catalogue.snapshot()
    with pytest.raises(ProductNotFound):
        await catalogue.replace(WRITER, UUID(int=99), spec("NEW"), expected_version)
    assert catalogue.snapshot() == before


async def test_replace_to_another_products_sku_raises_duplicate_sku_and_leaves_it_unchanged(
    catalogue: Catalogue,
) -> None:
    await catalogue.add("LAMP-1")
    other = await catalogue.add("LAMP-2")
    before = catalogue.snapshot()
    with pytest.raises(DuplicateSku):
        await catalogue.replace(WRITER, other.id, spec("LAMP-1", quantity=9))
    assert catalogue.snapshot() == before
    assert await catalogue.get(other.id) == other


async def test_replace_may_keep_the_products_own_sku(catalogue: Catalogue) -> None:
    original = await catalogue.add("LAMP-1")
    replaced = await catalogue.replace(WRITER, original.id, spec("LAMP-1", quantity=9))
    assert (replaced.sku, replaced.quantity, replaced.version) == ("LAMP-1", 9, 2)


async def test_patch_merges_the_given_fields_and_keeps_the_others(catalogue: Catalogue) -> None:
    original = await catalogue.add(description="Brass")
    catalogue.clock.advance(timedelta(seconds=30))
    patched = await catalogue.patch(WRITER, original.id, {"price": "7.5", "name": "Lamp"})
    assert patched.spec == attrs.evolve(original.spec, price=Decimal("7.50"), name="Lamp")
    assert (patched.version, patched.created_at) == (2, T0)
    assert patched.updated_at == T0 + timedelta(seconds=30)
    assert await catalogue.get(original.id) == patched


async def test_a_null_in_a_patch_removes_the_description(catalogue: Catalogue) -> None:
    original = await catalogue.add(description="Brass")
    patched = await catalogue.patch(WRITER, original.id, {"description": None})
    assert patched.description is None
    assert patched.spec == attrs.evolve(original.spec, description=None)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"price": "1.234"}, "price"),
        ({"quantity": -1}, "quantity"),
        ({"sku": None}, "sku"),
        ({"name": "  "}, "name"),
        ({"id": "x"}, "id"),
    ],
)
async def test_an_invalid_patch_raises_invalid_product_and_changes_nothing(
    catalogue: Catalogue, patch: dict[str, Any], field: str
) -> None:
    original = await catalogue.add()
    before = catalogue.snapshot()
    with pytest.raises(InvalidProduct) as caught:
        await catalogue.patch(WRITER, original.id, patch)
    assert [e.field for e in caught.value.errors] == [field]
    assert catalogue.snapshot() == before


async def test_patch_with_a_stale_expected_version_raises_version_mismatch_and_changes_nothing(
    catalogue: Catalogue,
) -> None:
    original = await catalogue.add()
    await catalogue.patch(WRITER, original.id, {"quantity": 1})
    before = catalogue.snapshot()
    with pytest.raises(VersionMismatch) as caught:
        await catalogue.patch(WRITER, original.id, {"quantity": 2}, expected_version=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert catalogue.snapshot() == before


@pytest.mark.parametrize("target", ["stale version", "unknown id"])
async def test_an_invalid_patch_is_reported_before_the_product_is_looked_at(
    catalogue: Catalogue, target: str
) -> None:
    original = await catalogue.add()
    await catalogue.patch(WRITER, original.id, {"quantity": 1})
    product_id = original.id if target == "stale version" else UUID(int=99)
    with pytest.raises(InvalidProduct) as caught:
        await catalogue.patch(WRITER, product_id, {"quantity": -1}, expected_version=1)
    assert [e.field for e in caught.value.errors] == ["quantity"]


async def test_patch_with_the_current_expected_version_succeeds(catalogue: Catalogue) -> None:
    original = await catalogue.add()
    patched = await catalogue.patch(WRITER, original.id, {"quantity": 3}, expected_version=1)
    assert (patched.quantity, patched.version) == (3, 2)


@pytest.mark.parametrize("expected_version", [None, 1])
async def test_patch_of_an_unknown_id_raises_product_not_found(
    catalogue: Catalogue, expected_version: int | None
) -> None:
    with pytest.raises(ProductNotFound):
        await catalogue.patch(WRITER, UUID(int=99), {"quantity": 1}, expected_version)
    assert catalogue.snapshot() == ({}, {}, {}, [])


async def test_patch_to_another_products_sku_raises_duplicate_sku_and_changes_nothing(
    catalogue: Catalogue,
) -> None:
    await catalogue.add("LAMP-1")
    other = await catalogue.add("LAMP-2")
    before = catalogue.snapshot()
    with pytest.raises(DuplicateSku):
        await catalogue.patch(WRITER, other.id, {"sku": "LAMP-1"})
    assert catalogue.snapshot() == before


@pytest.mark.parametrize("expected_version", [None, 1])
async def test_delete_removes_the_product_with_or_without_the_current_version(
    catalogue: Catalogue, expected_version: int | None
) -> None:
    doomed = await catalogue.add("LAMP-1")
    kept = await catalogue.add("LAMP-2")
    await catalogue.delete(WRITER, doomed.id, expected_version)
    with pytest.raises(ProductNotFound):
        await catalogue.get(doomed.id)
    assert catalogue.db.store.products == {kept.id: kept}


@pytest.mark.parametrize("expected_version", [None, 1])
async def test_delete_of_an_unknown_id_raises_product_not_found(
    catalogue: Catalogue, expected_version: int | None
) -> None:
    await catalogue.add()
    before = catalogue.snapshot()
    with pytest.raises(ProductNotFound):
        await catalogue.delete(WRITER, UUID(int=99), expected_version)
    assert catalogue.snapshot() == before


async def test_delete_with_a_stale_version_raises_version_mismatch_and_keeps_the_product(
    catalogue: Catalogue,
) -> None:
    original = await catalogue.add()
    current = await catalogue.patch(WRITER, original.id, {"quantity": 1})
    with pytest.raises(VersionMismatch) as caught:
        await catalogue.delete(WRITER, original.id, expected_version=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert await catalogue.get(original.id) == current


Write = Callable[[Catalogue, Principal, Product], Awaitable[object]]
WRITES: dict[str, Write] = {
    "create": lambda c, who, _: c.create(who, spec("NEW")),
    "create with a key": lambda c, who, _: c.create(who, spec("NEW"), idempotency_key="k"),
    "replay a key": lambda c, who, _: c.create(who, spec("LAMP-1"), idempotency_key="seed"),
    "replace": lambda c, who, p: c.replace(who, p.id, spec("NEW")),
    "patch": lambda c, who, p: c.patch(who, p.id, {"quantity": 0}),
    "delete": lambda c, who, p: c.delete(who, p.id),
    "delete with a version": lambda c, who, p: c.delete(who, p.id, 1),
}


@pytest.mark.parametrize("principal", [READER, NOBODY], ids=["read-only", "no scopes"])
@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
async def test_a_principal_without_the_write_scope_gets_missing_scope_and_nothing_is_written(
    catalogue: Catalogue, principal: Principal, write: Write
) -> None:
    product, _ = await catalogue.create(WRITER, spec("LAMP-1"), idempotency_key="seed")
    before = catalogue.snapshot()
    with pytest.raises(MissingScope) as caught:
        await write(catalogue, principal, product)
    assert caught.value.scope == WRITE_SCOPE
    assert catalogue.snapshot() == before


async def test_the_same_key_and_spec_replay_the_first_product_and_store_one(
    catalogue: Catalogue,
) -> None:
    first, first_new = await catalogue.create(WRITER, spec(price="19.9"), idempotency_key="k")
    catalogue.clock.advance(timedelta(hours=1))
    again, again_new = await catalogue.create(WRITER, spec(price="19.90"), idempotency_key="k")
    assert (first_new, again_new) == (True, False)
    assert again == first
    assert list(catalogue.db.store.products) == [first.id]


async def test_the_same_key_with_a_different_spec_raises_key_reused_and_writes_nothing(
    catalogue: Catalogue,
) -> None:
    await catalogue.create(WRITER, spec(), idempotency_key="k")
    before = catalogue.snapshot()
    with pytest.raises(IdempotencyKeyReused):
        await catalogue.create(WRITER, spec("LAMP-2"), idempotency_key="k")
    assert catalogue.snapshot() == before


async def test_the_same_key_from_two_principals_creates_two_products(
    catalogue: Catalogue,
) -> None:
    mine, mine_new = await catalogue.create(WRITER, spec("LAMP-1"), idempotency_key="k")
    theirs, theirs_new = await catalogue.create(OTHER_WRITER, spec("LAMP-2"), idempotency_key="k")
    assert (mine_new, theirs_new) == (True, True)
    assert mine.id != theirs.id
    assert set(catalogue.db.store.products) == {mine.id, theirs.id}


async def test_a_key_still_replays_just_before_it_expires(catalogue: Catalogue) -> None:
    first, _ = await catalogue.create(WRITER, spec(), idempotency_key="k")
    catalogue.clock.advance(DAY - timedelta(microseconds=1))
    again, created = await catalogue.create(WRITER, spec(), idempotency_key="k")
    assert (again, created) == (first, False)


async def test_an_expired_key_allows_a_new_create(catalogue: Catalogue) -> None:
    first, _ = await catalogue.create(WRITER, spec("LAMP-1"), idempotency_key="k")
    catalogue.clock.advance(DAY + timedelta(seconds=1))
    second, created = await catalogue.create(WRITER, spec("LAMP-2"), idempotency_key="k")
    assert created
    assert second.id != first.id
    assert set(catalogue.db.store.products) == {first.id, second.id}
    replay, replayed_new = await catalogue.create(WRITER, spec("LAMP-2"), idempotency_key="k")
    assert (replay, replayed_new) == (second, False)


async def test_replaying_a_key_whose_product_was_deleted_raises_idempotent_product_deleted(
    catalogue: Catalogue,
) -> None:
    product, _ = await catalogue.create(WRITER, spec(), idempotency_key="k")
    await catalogue.delete(WRITER, product.id)
    before = catalogue.snapshot()
    with pytest.raises(IdempotentProductDeleted):
        await catalogue.create(WRITER, spec(), idempotency_key="k")
    assert catalogue.snapshot() == before


@st.composite
def catalogue_rows(draw: st.DrawFn) -> list[tuple[str, str, Decimal, int, UUID]]:
    """Products to create (sku, name, price, seconds before creation, id), with many ties."""
    return draw(
        st.lists(
            st.tuples(
                st.text("ABC", min_size=1, max_size=3),
                st.text(NAME_ALPHABET, min_size=1, max_size=4).filter(str.strip),
                st.integers(0, 4).map(lambda c: Decimal(c * 50).scaleb(-2)),
                st.integers(0, 1),
                st.uuids(),
            ),
            max_size=14,
            unique_by=(lambda row: row[0], lambda row: row[4]),
        )
    )


async def stocked(rows: list[tuple[str, str, Decimal, int, UUID]]) -> Catalogue:
    # Each create takes two ids: the product's, then its "initial" ledger entry's.
    ids = (id_ for n, row in enumerate(rows) for id_ in (row[4], UUID(int=n)))
    catalogue = Catalogue.build(FakeIds(ids))
    for sku, name, price, wait, _ in rows:
        catalogue.clock.advance(timedelta(seconds=wait))
        await catalogue.add(sku, name=name, price=price)
    return catalogue


async def walk(catalogue: Catalogue, query: ProductQuery) -> list[Product]:
    """Every item of every page, following `next` until it is None."""
    seen: list[Product] = []
    pages = 0
    after = None
    while True:
        page: Page = await catalogue.listing(attrs.evolve(query, after=after))
        pages += 1
        assert pages <= len(catalogue.db.store.products) + 1, "paging does not terminate"
        assert len(page.items) <= query.limit
        if after is not None:
            assert page.items, "a page with a `next` keyset was followed by an empty page"
        seen.extend(page.items)
        if page.next is None:
            return seen
        assert len(page.items) == query.limit
        assert page.next == keyset_of(page.items[-1], query.sort)
        after = page.next


def in_order(products: list[Product], query: ProductQuery) -> list[Product]:
    return sorted(
        products,
        key=lambda p: (getattr(p, query.sort.value), p.id),
        reverse=query.order is SortOrder.DESC,
    )


queries = st.builds(
    ProductQuery,
    limit=st.integers(1, 7),
    sort=st.sampled_from(SortField),
    order=st.sampled_from(SortOrder),
)
LISTING = settings(max_examples=150, deadline=None)


@LISTING
@given(catalogue_rows(), queries)
async def test_walking_the_pages_visits_every_product_once_in_sort_order(
    rows: list[tuple[str, str, Decimal, int, UUID]], query: ProductQuery
) -> None:
    catalogue = await stocked(rows)
    everything = list(catalogue.db.store.products.values())
    assert await walk(catalogue, query) == in_order(everything, query)


# Everything is drawn before the test's coroutine starts: a draw inside it that runs out of data
# raises Hypothesis' StopTest, a BaseException that ends anyio's runner task and is reported
# later as "Task exception was never retrieved".
@st.composite
def rows_and_filters(
    draw: st.DrawFn,
) -> tuple[list[tuple[str, str, Decimal, int, UUID]], ProductQuery]:
    rows = draw(catalogue_rows())
    cents = st.integers(0, 4).map(lambda c: Decimal(c * 50).scaleb(-2))
    sku_filter = st.text("ABC", min_size=1, max_size=3)
    if rows:
        sku_filter |= st.sampled_from([row[0] for row in rows])
    query = attrs.evolve(
        draw(queries),
        sku=draw(st.none() | sku_filter),
        name_contains=draw(st.none() | st.text(NAME_ALPHABET, max_size=3)),
        min_price=draw(st.none() | cents),
        max_price=draw(st.none() | cents),
    )
    return rows, query


@LISTING
@given(rows_and_filters())
async def test_filters_select_exactly_the_matching_products(
    rows_and_query: tuple[list[tuple[str, str, Decimal, int, UUID]], ProductQuery],
) -> None:
    rows, query = rows_and_query
    catalogue = await stocked(rows)

    def wanted(p: Product) -> bool:
        return (
            query.sku in (None, p.sku)
            and (query.name_contains is None or query.name_contains.upper() in p.name.upper())
            and (query.min_price is None or query.min_price <= p.price)
            and (query.max_price is None or p.price <= query.max_price)
        )

    matching = [p for p in catalogue.db.store.products.values() if wanted(p)]
    assert await walk(catalogue, query) == in_order(matching, query)


async def test_an_empty_catalogue_lists_one_empty_last_page(catalogue: Catalogue) -> None:
    assert await catalogue.listing(ProductQuery()) == Page((), None)


Op = tuple[str, int, str]
operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "replace", "delete", "key"]),
        st.integers(0, 4),
        st.text("AB", min_size=1, max_size=2),
    ),
    max_size=8,
)


async def seeded() -> tuple[Catalogue, list[Product]]:
    catalogue = Catalogue.build()
    seeds = [
        (await catalogue.create(WRITER, spec(f"SEED-{n}"), idempotency_key=f"seed-{n}"))[0]
        for n in range(4)
    ]
    return catalogue, seeds


async def apply(catalogue: Catalogue, seeds: list[Product], ops: list[Op], commit: bool) -> None:
    """Apply the writes in one unit of work, tolerating refusals; commit, or fail at the end."""
    now = catalogue.clock.now()
    async with catalogue.db.unit_of_work() as uow:
        for n, (kind, target, text) in enumerate(ops):
            victim = seeds[target % len(seeds)].id
            try:
                if kind == "add":
                    await uow.products.add(Product.new(UUID(int=1000 + n), spec(text), now))
                elif kind == "replace":
                    entry_id = UUID(int=2000 + n)
                    await uow.products.replace(victim, spec(text), now, None, entry_id=entry_id)
                elif kind == "delete":
                    await uow.products.delete(victim, now, None)
                else:
                    record = IdempotencyRecord("alice", text, "f", victim, now, now + DAY)
                    await uow.idempotency.add(record)
            except (DuplicateSku, IdempotentRequestInProgress):
                pass
        if commit:
            await uow.commit()
        else:
            raise Boom


@settings(max_examples=100, deadline=None)
@given(operations)
async def test_a_failed_unit_of_work_leaves_the_store_exactly_as_before(ops: list[Op]) -> None:
    catalogue, seeds = await seeded()
    before = catalogue.snapshot()
    with pytest.raises(Boom):
        await apply(catalogue, seeds, ops, commit=False)
    assert catalogue.snapshot() == before


async def test_a_committed_unit_of_work_keeps_its_writes() -> None:
    catalogue, seeds = await seeded()
    await apply(catalogue, seeds, [("delete", 0, ""), ("add", 0, "NEW")], commit=True)
    assert set(catalogue.db.store.products) == {UUID(int=1001)} | {p.id for p in seeds[1:]}


async def test_a_unit_of_work_left_without_commit_writes_nothing() -> None:
    catalogue, seeds = await seeded()
    before = catalogue.snapshot()
    async with catalogue.db.unit_of_work() as uow:
        await uow.products.delete(seeds[0].id, catalogue.clock.now(), None)
    assert catalogue.snapshot() == before


async def test_a_failed_create_restores_the_expired_idempotency_record_it_replaced(
    catalogue: Catalogue,
) -> None:
    await catalogue.create(WRITER, spec("LAMP-1"), idempotency_key="k")
    catalogue.clock.advance(DAY + timedelta(seconds=1))
    before = catalogue.snapshot()
    with pytest.raises(DuplicateSku):
        await catalogue.create(WRITER, spec("LAMP-1"), idempotency_key="k")
    assert catalogue.snapshot() == before


async def test_an_adjustment_replayed_after_its_product_was_deleted_is_refused() -> None:

    catalogue = Catalogue.build()
    adjust = AdjustStock(
        catalogue.db.unit_of_work, catalogue.clock, FakeIds(UUID(int=n) for n in range(500, 600))
    )
    product = await catalogue.add()
    change = StockChange.parse({"delta": -1, "reason": "sale"})
    entry, new = await adjust(WRITER, product.id, change, idempotency_key="k")
    assert new
    await catalogue.delete(WRITER, product.id)
    with pytest.raises(IdempotentProductDeleted):
        await adjust(WRITER, product.id, change, idempotency_key="k")
    assert entry.id not in catalogue.db.store.ledger


async def test_a_batch_that_fails_part_way_writes_nothing_and_keeps_no_key() -> None:

    catalogue = Catalogue.build()
    write = WriteBatch(
        catalogue.db.unit_of_work, catalogue.clock, FakeIds(UUID(int=n) for n in range(700, 800))
    )
    await catalogue.add("TAKEN")
    before = catalogue.snapshot()
    raw = {
        "mode": "create",
        "products": [
            {**attrs.asdict(spec("NEW")), "price": "1.00"},
            {**attrs.asdict(spec("TAKEN")), "price": "1.00"},
        ],
    }
    with pytest.raises(SkusTaken):
        await write(WRITER, Batch.parse(raw), idempotency_key="import-1")
    assert catalogue.snapshot() == before
