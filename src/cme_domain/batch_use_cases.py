"""The use case of batches: up to BATCH_MAX products created or upserted, all in one step."""

from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import attrs

from cme_domain.batch import Batch, BatchItem, BatchMode
from cme_domain.errors import (
    IdempotentProductDeleted,
    IdempotentRequestInProgress,
    SkusTaken,
    StockHeld,
    WriteContention,
)
from cme_domain.idempotency import fingerprint, recorded, same_request
from cme_domain.ports import (
    Clock,
    IdempotencyRecord,
    IdGenerator,
    ProductRepository,
    UnitOfWork,
    UnitOfWorkFactory,
)
from cme_domain.principal import WRITE_SCOPE, Principal
from cme_domain.product import Product

# An upsert that lost the race for a sku to a concurrent create is run again.
_ATTEMPTS: Final = 5
_CREATED, _REPLACED = "c", "r"


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
    earlier = await recorded(uow.idempotency, principal, key, now)
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
