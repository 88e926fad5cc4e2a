"""The in-memory product repository and idempotency store: every write undoable."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import attrs

from cme_adapters.memory.store import InMemoryStore, Undo
from cme_domain.batch import BatchItem
from cme_domain.changes import ChangeType
from cme_domain.errors import DuplicateSku, IdempotentRequestInProgress, SkusTaken
from cme_domain.listing import (
    Keyset,
    Page,
    ProductQuery,
    SortOrder,
    SortValue,
    keyset_of,
    sort_value,
)
from cme_domain.ports import Clock, IdempotencyRecord, LedgerPage, LedgerQuery
from cme_domain.product import QUANTITY_MAX, Product, ProductSpec
from cme_domain.stock import StockChange, StockEntry


@attrs.define
class InMemoryProductRepository:
    store: InMemoryStore
    undo: list[Undo]
    clock: Clock

    async def lock(self, product_ids: Sequence[UUID]) -> None:
        """Nothing to do: no other coroutine runs while a unit of work does (database.py)."""

    def _held(self, product: Product | None) -> Product | None:
        if product is None:
            return None
        held = self.store.held(product.id, self.clock.now())
        return attrs.evolve(product, held=held) if held else product

    def _holds_stop(self, product_id: UUID, now: datetime, holds_locked: bool) -> bool:
        """What the SQL stores decide by the product row alone: a hold may be live on it."""
        return not holds_locked and self.store.held(product_id, now) > 0

    async def add(self, product: Product, entry: StockEntry | None = None) -> None:
        if any(p.sku == product.sku for p in self.store.products.values()):
            raise DuplicateSku(product.sku)
        self.store.products[product.id] = product
        self.undo.append(lambda: self.store.products.__delitem__(product.id))
        self._record(entry)
        self._changed(ChangeType.CREATED, product)

    def _record(self, entry: StockEntry | None) -> None:
        if entry is not None:
            self.store.ledger[entry.id] = entry
            self.undo.append(lambda: self.store.ledger.__delitem__(entry.id))

    def _changed(self, kind: ChangeType, product: Product) -> None:
        self.undo.append(
            self.store.record(kind, product.id, product.version, product.updated_at, product)
        )

    async def get(self, product_id: UUID) -> Product | None:
        return self._held(self.store.products.get(product_id))

    async def get_many(self, product_ids: Sequence[UUID]) -> dict[UUID, Product]:
        found = (self._held(self.store.products.get(i)) for i in product_ids)
        return {p.id: p for p in found if p is not None}

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
        page = [p for p in map(self._held, rows[: query.limit]) if p is not None]
        more = len(rows) > query.limit
        return Page(tuple(page), keyset_of(page[-1], query.sort) if more else None)

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
        current = self.store.products.get(product_id)
        if current is None or expected_version not in (None, current.version):
            return None
        if self._holds_stop(product_id, now, holds_locked):
            return None
        if any(p.sku == spec.sku and p.id != product_id for p in self.store.products.values()):
            raise DuplicateSku(spec.sku)
        return self._put(current, current.revised(spec, now), entry_id)

    def _put(self, current: Product, revised: Product, entry_id: UUID) -> Product:
        self.store.products[current.id] = revised
        self.undo.append(lambda: self.store.products.__setitem__(current.id, current))
        self._record(StockEntry.setting(entry_id, revised, current.quantity))
        self._changed(ChangeType.UPDATED, revised)
        return revised

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
        current = self.store.products.get(product_id)
        if current is None or expected_version not in (None, current.version):
            return None
        if change.delta < 0 and self._holds_stop(product_id, now, holds_locked):
            return None
        quantity = current.quantity + change.delta
        if not 0 <= quantity <= QUANTITY_MAX:
            return None
        revised = attrs.evolve(
            current, quantity=quantity, updated_at=now, version=current.version + 1
        )
        self.store.products[product_id] = revised
        self.undo.append(lambda: self.store.products.__setitem__(product_id, current))
        entry = StockEntry.of(entry_id, revised, change.delta, change.reason, change.reference)
        self._record(entry)
        self._changed(ChangeType.STOCK_ADJUSTED, revised)
        return entry

    async def write_batch(
        self, candidates: Sequence[Product], entry_ids: Sequence[UUID], *, upsert: bool
    ) -> tuple[BatchItem, ...]:
        by_sku = {p.sku: p for p in self.store.products.values()}
        if not upsert:
            taken = [i for i, c in enumerate(candidates) if c.sku in by_sku]
            if taken:
                raise SkusTaken(taken, "these skus already exist")
        items: list[BatchItem] = []
        for candidate, entry_id in zip(candidates, entry_ids, strict=True):
            current = by_sku.get(candidate.sku)
            if current is None:
                await self.add(candidate, StockEntry.initial(entry_id, candidate))
                items.append(BatchItem(True, candidate))
            else:
                revised = current.revised(candidate.spec, candidate.updated_at)
                items.append(BatchItem(False, self._put(current, revised, entry_id)))
        return tuple(items)

    async def stock_entry(self, entry_id: UUID) -> StockEntry | None:
        return self.store.ledger.get(entry_id)

    async def stock_entries(self, product_id: UUID, query: LedgerQuery) -> LedgerPage:
        def key(e: StockEntry) -> tuple[int, UUID]:
            return e.version_after, e.id

        rows = sorted(
            (e for e in self.store.ledger.values() if e.product_id == product_id),
            key=key,
            reverse=True,
        )
        if query.after is not None:
            after = (query.after.value, query.after.id)
            rows = [e for e in rows if key(e) < after]
        page = rows[: query.limit]
        more = len(rows) > query.limit
        return LedgerPage(
            tuple(page), Keyset(page[-1].version_after, page[-1].id) if more else None
        )

    async def delete(
        self,
        product_id: UUID,
        now: datetime,
        expected_version: int | None,
        *,
        holds_locked: bool = False,
    ) -> bool:
        current = self.store.products.get(product_id)
        if current is None or expected_version not in (None, current.version):
            return False
        if self._holds_stop(product_id, now, holds_locked):
            return False
        del self.store.products[product_id]
        self.undo.append(lambda: self.store.products.__setitem__(product_id, current))
        ledger = {i: e for i, e in self.store.ledger.items() if e.product_id == product_id}
        for entry_id in ledger:
            del self.store.ledger[entry_id]
        self.undo.append(lambda: self.store.ledger.update(ledger))
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
