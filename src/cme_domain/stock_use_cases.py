"""The use cases of stock: adjustments and the ledger."""

from datetime import timedelta
from typing import Final
from uuid import UUID

import attrs

from cme_domain.errors import (
    DomainError,
    IdempotentProductDeleted,
    InsufficientStock,
    ProductNotFound,
    StockEntryNotFound,
    StockOverflow,
    VersionMismatch,
    WriteContention,
)
from cme_domain.idempotency import fingerprint, recorded, same_request
from cme_domain.ports import (
    Clock,
    IdempotencyRecord,
    IdGenerator,
    LedgerPage,
    LedgerQuery,
    UnitOfWorkFactory,
)
from cme_domain.principal import WRITE_SCOPE, Principal
from cme_domain.product import QUANTITY_MAX, Product
from cme_domain.stock import StockChange, StockEntry

# An adjustment refused while a concurrent write made it possible again is simply retried.
_ATTEMPTS: Final = 5


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
                earlier = await recorded(uow.idempotency, principal, idempotency_key, now)
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
