"""An in-memory unit of work: the unit tests' database, and the contract suite's reference."""

import secrets
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Self
from uuid import UUID

import attrs

from cme_adapters.sql.schema import SCHEMA_HEAD
from cme_domain.errors import DuplicateSku, IdempotentRequestInProgress
from cme_domain.listing import Page, ProductQuery, SortOrder, SortValue, keyset_of, sort_value
from cme_domain.ports import IdempotencyRecord
from cme_domain.product import Product, ProductSpec

Undo = Callable[[], None]


@attrs.define
class InMemoryStore:
    products: dict[UUID, Product] = attrs.Factory(dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = attrs.Factory(dict)


@attrs.define
class InMemoryProductRepository:
    store: InMemoryStore
    undo: list[Undo]

    async def add(self, product: Product) -> None:
        if any(p.sku == product.sku for p in self.store.products.values()):
            raise DuplicateSku(product.sku)
        self.store.products[product.id] = product
        self.undo.append(lambda: self.store.products.__delitem__(product.id))

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
        return revised

    async def delete(self, product_id: UUID, expected_version: int | None) -> bool:
        current = self.store.products.get(product_id)
        if current is None or expected_version not in (None, current.version):
            return False
        del self.store.products[product_id]
        self.undo.append(lambda: self.store.products.__setitem__(product_id, current))
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
        return None
