"""The use cases of stock and batches: adjustments, the ledger, and all-or-nothing imports."""

import hashlib
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import attrs

from cme_domain.batch import Batch, BatchItem, BatchMode
from cme_domain.errors import (
    DomainError,
    IdempotencyKeyReused,
    IdempotentProductDeleted,
    IdempotentRequestInProgress,
    InsufficientStock,
    ProductNotFound,
    SkusTaken,
    StockEntryNotFound,
    StockHeld,
    StockOverflow,
    VersionMismatch,
    WriteContention,
)
from cme_domain.ports import (
    Clock,
    IdempotencyRecord,
    IdempotencyStore,
    IdGenerator,
    LedgerPage,
    LedgerQuery,
    ProductRepository,
    UnitOfWork,
    UnitOfWorkFactory,
)
from cme_domain.principal import WRITE_SCOPE, Principal
from cme_domain.product import QUANTITY_MAX, Product
from cme_domain.stock import StockChange, StockEntry

# An adjustment refused while a concurrent write made it possible again is simply retried.
_ATTEMPTS: Final = 5
_CREATED, _REPLACED = "c", "r"


@attrs.frozen
class AdjustStock:
    """quantity += delta with a ledger entry, never below 0 nor past QUANTITY_MAX."""

    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator
    idempotency_ttl: timedelta = timedelta(hours=24)

    async def __call__(
        self,
        principal: Principal,
        product_id: UUID,
        change: StockChange,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[StockEntry, bool]:
        """The entry written, and whether it is new (False: an idempotent replay)."""
        principal.require(WRITE_SCOPE)
        digest = fingerprint("stock-adjustment", product_id, change)
        # First as one statement; when that misses but the adjustment would apply (a
        # reservation may hold the product, or a writer raced this one), again with the
        # product locked and its holds counted.
        for locked in (False, True):
            written = await self._adjust(
                principal, product_id, change, expected_version, idempotency_key, digest, locked
            )
            if written is not None:
                return written
        raise WriteContention(product_id)

    async def _adjust(
        self,
        principal: Principal,
        product_id: UUID,
        change: StockChange,
        expected_version: int | None,
        idempotency_key: str | None,
        digest: str,
        locked: bool,
    ) -> tuple[StockEntry, bool] | None:
        # The adjustment is one atomic repository call; only its idempotency record, or the
        # lock, needs a transaction around it.
        async with self.uow(atomic=idempotency_key is not None or locked) as uow:
            if locked:
                await uow.products.lock([product_id])
            now = self.clock.now()
            entry_id = self.ids.new_id()
            if idempotency_key is not None:
                earlier = await _earlier(uow.idempotency, principal, idempotency_key, now)
                if earlier is not None:
                    same_request(earlier, digest, idempotency_key)
                    replayed = await uow.products.stock_entry(UUID(earlier.outcome))
                    if replayed is None:
                        raise IdempotentProductDeleted(idempotency_key)
                    return replayed, False
                record = IdempotencyRecord(
                    principal.subject,
                    idempotency_key,
                    digest,
                    product_id,
                    now,
                    now + self.idempotency_ttl,
                    outcome=str(entry_id),
                )
                await uow.idempotency.add(record)
            if locked:
                refusal = _refusal(
                    product_id, await uow.products.get(product_id), change, expected_version
                )
                if refusal is not None:
                    raise refusal
            entry = await uow.products.adjust(
                product_id, change, entry_id, now, expected_version, holds_locked=locked
            )
            if entry is not None:
                await uow.commit()
                return entry, True
            current = await uow.products.get(product_id)
            refusal = _refusal(product_id, current, change, expected_version)
            if refusal is not None:
                raise refusal
        return None


def _refusal(
    product_id: UUID, current: Product | None, change: StockChange, expected: int | None
) -> DomainError | None:
    """Why an adjustment cannot apply to the product as it is; None when it can."""
    if current is None:
        return ProductNotFound(product_id)
    if expected is not None and current.version != expected:
        return VersionMismatch(expected, current.version)
    if change.delta < 0 and current.available + change.delta < 0:
        return InsufficientStock(current.available, change.delta)
    if current.quantity + change.delta > QUANTITY_MAX:
        return StockOverflow(current.quantity, change.delta, QUANTITY_MAX)
    return None


@attrs.frozen
class ListStockEntries:
    uow: UnitOfWorkFactory

    async def __call__(self, product_id: UUID, query: LedgerQuery) -> LedgerPage:
        async with self.uow(atomic=False) as uow:
            if await uow.products.get(product_id) is None:
                raise ProductNotFound(product_id)
            return await uow.products.stock_entries(product_id, query)


@attrs.frozen
class GetStockEntry:
    uow: UnitOfWorkFactory

    async def __call__(self, product_id: UUID, entry_id: UUID) -> StockEntry:
        async with self.uow(atomic=False) as uow:
            entry = await uow.products.stock_entry(entry_id)
        if entry is None or entry.product_id != product_id:
            raise StockEntryNotFound(entry_id)
        return entry


@attrs.frozen
class WriteBatch:
    """Creates (or upserts by sku) up to BATCH_MAX products, all in one transaction."""

    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator
    idempotency_ttl: timedelta = timedelta(hours=24)

    async def __call__(
        self, principal: Principal, batch: Batch, idempotency_key: str | None = None
    ) -> tuple[tuple[BatchItem, ...], bool]:
        """The items in input order, and whether they are new (False: an idempotent replay)."""
        principal.require(WRITE_SCOPE)
        digest = fingerprint("batch", batch)
        now = self.clock.now()
        # An upsert that raced a concurrent create of one of its skus wrote nothing; it is
        # safe to run again, now that the other product is there to be replaced.
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await self._write(principal, batch, idempotency_key, digest, now)
            except WriteContention:
                if attempt == _ATTEMPTS:
                    raise
            except (SkusTaken, IdempotentRequestInProgress):
                # A request with the same key that committed while this one waited on its
                # skus or its key: this one is a retry of it, and gets its answer.
                if idempotency_key is None:
                    raise
                async with self.uow() as uow:
                    replay = await _replayed(uow, principal, idempotency_key, digest, now)
                if replay is None:
                    raise
                return replay, False
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _write(
        self,
        principal: Principal,
        batch: Batch,
        idempotency_key: str | None,
        fingerprint: str,
        now: datetime,
    ) -> tuple[tuple[BatchItem, ...], bool]:
        async with self.uow() as uow:
            if idempotency_key is not None:
                replay = await _replayed(uow, principal, idempotency_key, fingerprint, now)
                if replay is not None:
                    return replay, False
            candidates = [Product.new(self.ids.new_id(), spec, now) for spec in batch.specs]
            entry_ids = [self.ids.new_id() for _ in candidates]
            items = await uow.products.write_batch(
                candidates, entry_ids, upsert=batch.mode is BatchMode.UPSERT
            )
            items = await _holds_kept(uow.products, items)
            if idempotency_key is not None:
                # Recorded after the write, in the same transaction: which products were
                # created and which replaced is only known now. A concurrent request with the
                # same key then fails on the key or on the skus, and replays this one.
                outcome = ",".join(
                    f"{_CREATED if i.created else _REPLACED}{i.product.id.hex}" for i in items
                )
                record = IdempotencyRecord(
                    principal.subject,
                    idempotency_key,
                    fingerprint,
                    items[0].product.id,
                    now,
                    now + self.idempotency_ttl,
                    outcome=outcome,
                )
                await uow.idempotency.add(record)
            await uow.commit()
        return items, True


async def _holds_kept(
    products: ProductRepository, items: tuple[BatchItem, ...]
) -> tuple[BatchItem, ...]:
    """The items with their holds; refused if a replace set a quantity below them.

    Read after the write, in its transaction: the rows are then locked, so the holds counted
    are every one committed, and no new one can come until this batch ends.
    """
    replaced = [item.product.id for item in items if not item.created]
    if not replaced:
        return items
    written = await products.get_many(replaced)
    for index, item in enumerate(items):
        current = written.get(item.product.id)
        if current is not None and current.available < 0:
            raise StockHeld(current.held, f"products[{index}]")
    return tuple(
        attrs.evolve(item, product=written.get(item.product.id, item.product)) for item in items
    )


async def _replayed(
    uow: UnitOfWork, principal: Principal, key: str, fingerprint: str, now: datetime
) -> tuple[BatchItem, ...] | None:
    """The answer of the batch this key already wrote, or None when it wrote none."""
    earlier = await _earlier(uow.idempotency, principal, key, now)
    if earlier is None:
        return None
    same_request(earlier, fingerprint, key)
    return await _replay(uow.products, earlier.outcome, key)


async def _replay(products: ProductRepository, outcome: str, key: str) -> tuple[BatchItem, ...]:
    written = [(w[0] == _CREATED, UUID(hex=w[1:])) for w in outcome.split(",")]
    found = await products.get_many([product_id for _, product_id in written])
    if len(found) < len(written):
        raise IdempotentProductDeleted(key)
    return tuple(BatchItem(created, found[product_id]) for created, product_id in written)


async def _earlier(
    store: IdempotencyStore, principal: Principal, key: str, now: datetime
) -> IdempotencyRecord | None:
    return await store.find(principal.subject, key, now)


def same_request(earlier: IdempotencyRecord, fingerprint: str, key: str) -> None:
    if earlier.fingerprint != fingerprint:
        raise IdempotencyKeyReused(key)


def fingerprint(operation: str, *parts: object) -> str:
    """The request a key was first used for: the operation and its input, so one key reused
    for another operation, or another body, is refused."""
    canonical = repr((operation, *(_plain(p) for p in parts)))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(part: object) -> object:
    return attrs.astuple(part) if attrs.has(type(part)) else part  # type: ignore[arg-type]
