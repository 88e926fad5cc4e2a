"""An in-memory unit of work: the unit tests' database, and the contract suite's reference."""

import secrets
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Self
from uuid import UUID

import attrs

from cme_adapters.notices import Notices
from cme_adapters.sql.schema import SCHEMA_HEAD
from cme_domain.changes import Change, ChangeBatch, ChangeType
from cme_domain.errors import DuplicateSku, IdempotentRequestInProgress
from cme_domain.listing import Page, ProductQuery, SortOrder, SortValue, keyset_of, sort_value
from cme_domain.ports import IdempotencyRecord
from cme_domain.product import Product, ProductSpec

Undo = Callable[[], None]


@attrs.define
class InMemoryStore:
    products: dict[UUID, Product] = attrs.Factory(dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = attrs.Factory(dict)
    # A list in commit order: a write and its event happen with no await between them.
    changes: list[Change] = attrs.Factory(list)
    last_position: int = 0
    pruned_through: int = 0
    # Every write tells at once; a rolled-back one only wakes readers to find nothing new.
    notices: Notices = attrs.Factory(lambda: Notices(listening=True))

    def record(
        self,
        kind: ChangeType,
        product_id: UUID,
        version: int,
        at: datetime,
        product: Product | None,
    ) -> Undo:
        self.last_position += 1
        self.changes.append(Change(self.last_position, kind, product_id, version, at, product))
        self.notices.notify()

        def undo() -> None:
            self.changes.pop()
            self.last_position -= 1

        return undo


@attrs.define
class InMemoryProductRepository:
    store: InMemoryStore
    undo: list[Undo]

    async def add(self, product: Product) -> None:
        if any(p.sku == product.sku for p in self.store.products.values()):
            raise DuplicateSku(product.sku)
        self.store.products[product.id] = product
        self.undo.append(lambda: self.store.products.__delitem__(product.id))
        self.undo.append(
            self.store.record(
                ChangeType.CREATED, product.id, product.version, product.updated_at, product
            )
        )

    async def get(self, product_id: UUID) -> Product | None:
        return self.store.products.get(product_id)

    async def list(self, query: ProductQuery) -> Page:
        descending = query.order is SortOrder.DESC

        def key(p: Product) -> tuple[SortValue, UUID]:
            return sort_value(p, query.sort), p.id

        rows = sorted(filter(query.matches, self.store.products.values()), key=key)
        if descending:
            rows.reverse()
        if query.after is not None:
            after = (query.after.value, query.after.id)
            rows = [p for p in rows if (key(p) < after if descending else key(p) > after)]
        page = rows[: query.limit]
        more = len(rows) > query.limit
        return Page(tuple(page), keyset_of(page[-1], query.sort) if more else None)

    async def replace(
        self, product_id: UUID, spec: ProductSpec, now: datetime, expected_version: int | None
    ) -> Product | None:
        current = self.store.products.get(product_id)
        if current is None or expected_version not in (None, current.version):
            return None
        if any(p.sku == spec.sku and p.id != product_id for p in self.store.products.values()):
            raise DuplicateSku(spec.sku)
        self.store.products[product_id] = revised = current.revised(spec, now)
        self.undo.append(lambda: self.store.products.__setitem__(product_id, current))
        self.undo.append(
            self.store.record(ChangeType.UPDATED, product_id, revised.version, now, revised)
        )
        return revised

    async def delete(self, product_id: UUID, now: datetime, expected_version: int | None) -> bool:
        current = self.store.products.get(product_id)
        if current is None or expected_version not in (None, current.version):
            return False
        del self.store.products[product_id]
        self.undo.append(lambda: self.store.products.__setitem__(product_id, current))
        self.undo.append(
            self.store.record(ChangeType.DELETED, product_id, current.version + 1, now, None)
        )
        return True


@attrs.define
class InMemoryIdempotencyStore:
    store: InMemoryStore
    undo: list[Undo]

    async def find(self, owner: str, key: str, now: datetime) -> IdempotencyRecord | None:
        record = self.store.idempotency.get((owner, key))
        return record if record is not None and record.expires_at > now else None

    async def add(self, record: IdempotencyRecord) -> None:
        slot = (record.owner, record.key)
        earlier = self.store.idempotency.get(slot)
        if earlier is not None and earlier.expires_at > record.created_at:
            raise IdempotentRequestInProgress(record.key)
        self.store.idempotency[slot] = record
        if earlier is None:
            self.undo.append(lambda: self.store.idempotency.__delitem__(slot))
        else:  # an expired record was replaced: a rollback must bring it back
            self.undo.append(lambda: self.store.idempotency.__setitem__(slot, earlier))

    async def prune(self, now: datetime) -> int:
        expired = [slot for slot, r in self.store.idempotency.items() if r.expires_at <= now]
        for slot in expired:
            del self.store.idempotency[slot]
        return len(expired)


@attrs.define
class InMemoryChangeFeed:
    store: InMemoryStore

    async def read(self, after: int | None, limit: int) -> ChangeBatch:
        start = after or 0
        items = [c for c in self.store.changes if c.sequence > start][:limit]
        end = max(self.store.last_position, self.store.pruned_through)
        return ChangeBatch(tuple(items), self.store.pruned_through, end)

    async def prune(self, before: datetime) -> int:
        old = [c.sequence for c in self.store.changes if c.occurred_at < before]
        if not old:
            return 0
        through = max(old)
        kept = [c for c in self.store.changes if c.sequence > through]
        removed = len(self.store.changes) - len(kept)
        self.store.changes[:] = kept
        self.store.pruned_through = max(self.store.pruned_through, through)
        return removed


class InMemoryUnitOfWork:
    """Writes apply at once; an atomic unit of work undoes them unless committed.

    None of the repository's methods awaits anything, so a use case's whole transaction runs
    without another coroutine interleaving: that is this adapter's isolation.
    """

    def __init__(self, store: InMemoryStore, *, atomic: bool = True) -> None:
        self._store = store
        self._atomic = atomic
        self._undo: list[Undo] = []
        self.products = InMemoryProductRepository(store, self._undo)
        self.idempotency = InMemoryIdempotencyStore(store, self._undo)

    async def __aenter__(self) -> Self:
        self._undo.clear()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._atomic:
            for undo in reversed(self._undo):
                undo()
        self._undo.clear()

    async def commit(self) -> None:
        self._undo.clear()


@attrs.define
class InMemoryDatabase:
    store: InMemoryStore = attrs.Factory(InMemoryStore)
    _cursor_secret: bytes = attrs.Factory(lambda: secrets.token_urlsafe(48).encode())

    def unit_of_work(self, *, atomic: bool = True) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store, atomic=atomic)

    def listen(self) -> None:
        """Writes in this process notify directly (InMemoryStore.record)."""

    def change_feed(self) -> InMemoryChangeFeed:
        return InMemoryChangeFeed(self.store)

    def change_notices(self) -> Notices:
        return self.store.notices

    async def open(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def cursor_secret(self) -> bytes:
        return self._cursor_secret

    async def schema_revision(self) -> str | None:
        """A store made by this code always has this code's schema."""
        return SCHEMA_HEAD

    def pool_stats(self) -> dict[str, int]:
        return {}

    async def close(self) -> None:
        self.store.notices.stop()
