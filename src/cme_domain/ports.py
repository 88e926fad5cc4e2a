"""The ports the use cases need; adapters implement them."""

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

import attrs

from cme_domain.batch import BatchItem
from cme_domain.listing import Keyset, Page, ProductQuery
from cme_domain.product import Product, ProductSpec
from cme_domain.reservation import Reservation
from cme_domain.stock import StockChange, StockEntry
from cme_domain.webhook_ports import WebhookRepository


@attrs.frozen
class LedgerQuery:
    limit: int
    after: Keyset | None = None


@attrs.frozen
class LedgerPage:
    items: tuple[StockEntry, ...]
    next: Keyset | None


class ProductRepository(Protocol):
    """Products as they are now. Every product read carries `held`: the units of the
    reservations live at the store's clock (ReservationRepository).

    Holds and the writes that take stock: a write given holds_locked=True comes from an atomic
    unit of work that has called `lock` on the product and checked its holds itself. Without
    it, a write that could take held stock (adjust with a negative delta, replace, delete)
    applies only while no reservation can hold the product; otherwise it writes nothing and
    answers as if the product had moved on (None, False), and the caller locks and retries.
    """

    async def lock(self, product_ids: Sequence[UUID]) -> None:
        """Keep every other writer off these products until the unit of work ends.

        Only in an atomic unit of work; products are taken in id order, so two callers never
        wait on each other. Reads made after it see the products' holds as they are.
        """

    async def add(self, product: Product, entry: StockEntry | None = None) -> None:
        """Store a new product and, in the same atomic step, its "initial" ledger entry.

        The use case makes the entry (StockEntry.initial: none for a product starting at 0).
        Raise DuplicateSku if the sku is taken; then nothing is written.
        """

    async def get(self, product_id: UUID) -> Product | None: ...

    async def get_many(self, product_ids: Sequence[UUID]) -> dict[UUID, Product]:
        """The products of these ids that exist, by id, in one step."""

    async def list(self, query: ProductQuery) -> Page: ...

    async def replace(
        self,
        product_id: UUID,
        spec: ProductSpec,
        now: datetime,
        expected_version: int | None,
        *,
        entry_id: UUID,
        holds_locked: bool = False,
    ) -> Product | None:
        """Overwrite the client fields and bump the version, in one compare-and-set step.

        When the quantity changes, the same atomic step writes the ledger entry
        StockEntry.setting(entry_id, new product, old quantity): reason "set", delta new - old,
        where old is the quantity this write replaced (not one read earlier).
        Return None when the product is gone or (with expected_version) has moved on;
        raise DuplicateSku if the new sku is taken.
        """

    async def adjust(
        self,
        product_id: UUID,
        change: StockChange,
        entry_id: UUID,
        now: datetime,
        expected_version: int | None,
        *,
        holds_locked: bool = False,
    ) -> StockEntry | None:
        """Add change.delta to the quantity, bump the version and write the entry, atomically.

        Only when the new quantity stays within 0..QUANTITY_MAX (and the version is the
        expected one); otherwise write nothing and return None: the caller reads why.
        """

    async def write_batch(
        self, candidates: Sequence[Product], entry_ids: Sequence[UUID], *, upsert: bool
    ) -> tuple[BatchItem, ...]:
        """Write every candidate or none, and return them in input order.

        A candidate whose sku is free is stored as it is, with its StockEntry.initial. Without
        upsert, any sku already taken raises SkusTaken naming the candidates' indexes. With
        upsert, the product holding the sku is replaced as `replace` does (its id and
        created_at stay, version + 1, updated_at from the candidate), with its
        StockEntry.setting. Entry i takes the id entry_ids[i]. The skus are all different.
        Raise WriteContention, writing nothing, when a sku this upsert found free was created
        by a concurrent writer before it could insert it: its "set" delta would be unknown.
        """

    async def stock_entry(self, entry_id: UUID) -> StockEntry | None: ...

    async def stock_entries(self, product_id: UUID, query: LedgerQuery) -> LedgerPage:
        """The product's ledger, newest first (created_at, then id, descending)."""

    async def delete(
        self,
        product_id: UUID,
        now: datetime,
        expected_version: int | None,
        *,
        holds_locked: bool = False,
    ) -> bool:
        """Remove the product and its ledger; False when it is gone or has moved on.

        Every write above also records its change event (occurring at `now` for a delete) in
        the same transaction as the write itself: product.created per new product,
        product.updated per replaced one, product.stock_adjusted for an adjustment (the
        product's state after it), a batch's in input order.
        """


@attrs.frozen
class IdempotencyRecord:
    """What a write with an Idempotency-Key produced, kept so a retry gets the same answer.

    product_id is the product it created or changed (for a batch, its first); outcome is
    whatever else the use case needs to answer again (the ledger entry, the batch's items),
    in the use case's own notation; empty for a create.
    """

    owner: str
    key: str
    fingerprint: str
    product_id: UUID
    created_at: datetime
    expires_at: datetime
    outcome: str = ""


class IdempotencyStore(Protocol):
    async def find(self, owner: str, key: str, now: datetime) -> IdempotencyRecord | None:
        """The unexpired record for this caller's key, if any."""

    async def add(self, record: IdempotencyRecord) -> None:
        """Keep the record, replacing an expired one.

        Raise IdempotentRequestInProgress if an unexpired record for the key appeared meanwhile
        (a concurrent request with the same key got there first).
        """

    async def prune(self, now: datetime) -> int:
        """Delete every record that has expired by now; return how many went."""


class ReservationRepository(Protocol):
    """Reservations, and the holds they put on products while they are held.

    A line's units count in its product's `held` while the reservation's stored state is held
    and the store's clock is before its expires_at: at that instant they stop counting, with no
    write needed.
    """

    async def add(self, reservation: Reservation) -> None:
        """Store a new held reservation; its products were locked by this unit of work."""

    async def get(self, reservation_id: UUID, *, lock: bool = False) -> Reservation | None:
        """The reservation; with lock, kept from every other writer until the unit of work ends
        (an atomic one only)."""

    async def save(self, reservation: Reservation) -> None:
        """Write its new state, updated_at and expires_at; its lines hold while it is held.

        Its products were locked by this unit of work.
        """

    async def expire(self, now: datetime) -> int:
        """Store the state expired on the held reservations whose time ran out by now: tidying
        only, since they stopped holding at expires_at. Return how many."""

    async def prune(self, before: datetime) -> int:
        """Delete the reservations no longer held (confirmed, released, expired) whose last
        update was before `before`; return how many went."""

    async def held_units(self) -> int:
        """The units all live reservations hold now, over every product."""


class UnitOfWork(Protocol):
    """The statements of one use case, atomic unless the factory was told otherwise.

    Atomic: one transaction, and nothing it wrote survives unless commit() is called.
    Not atomic: each statement takes effect on its own and commit() has nothing to do.
    """

    products: ProductRepository
    idempotency: IdempotencyStore
    reservations: ReservationRepository
    webhooks: WebhookRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, atomic: bool = True) -> UnitOfWork:
        """A new unit of work.

        atomic=False is for work that needs no transaction: reads, and writes that are a
        single statement or a compare-and-set on version. It spares the database the BEGIN
        and COMMIT round trips.
        """


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class IdGenerator(Protocol):
    def new_id(self) -> UUID: ...
