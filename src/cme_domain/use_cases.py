"""The catalogue's use cases: one public call each, depending only on ports."""

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final
from uuid import UUID

import attrs

from cme_domain.errors import (
    IdempotencyKeyReused,
    IdempotentProductDeleted,
    ProductNotFound,
    StockHeld,
    VersionMismatch,
    WriteContention,
)
from cme_domain.listing import Page, ProductQuery
from cme_domain.locked_writes import locked_product, refuse_miss, replace_locked
from cme_domain.ports import (
    Clock,
    IdempotencyRecord,
    IdGenerator,
    UnitOfWorkFactory,
)
from cme_domain.principal import WRITE_SCOPE, Principal
from cme_domain.product import Product, ProductSpec
from cme_domain.stock import StockEntry

# A racing writer can make a compare-and-set fail; without If-Match we simply try again.
_CAS_ATTEMPTS: Final = 5


@attrs.frozen
class GetProduct:
    uow: UnitOfWorkFactory

    async def __call__(self, product_id: UUID) -> Product:
        async with self.uow(atomic=False) as uow:
            product = await uow.products.get(product_id)
        if product is None:
            raise ProductNotFound(product_id)
        return product


@attrs.frozen
class ListProducts:
    uow: UnitOfWorkFactory

    async def __call__(self, query: ProductQuery) -> Page:
        async with self.uow(atomic=False) as uow:
            return await uow.products.list(query)


@attrs.frozen
class CreateProduct:
    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator
    idempotency_ttl: timedelta = timedelta(hours=24)

    async def __call__(
        self, principal: Principal, spec: ProductSpec, idempotency_key: str | None = None
    ) -> tuple[Product, bool]:
        """Create the product; return it and whether it is new (False: an idempotent replay)."""
        principal.require(WRITE_SCOPE)
        now = self.clock.now()
        # The product and its idempotency record must be written together; a bare create is
        # one INSERT and needs no transaction.
        async with self.uow(atomic=idempotency_key is not None) as uow:
            if idempotency_key is not None:
                fingerprint = _fingerprint(spec)
                earlier = await uow.idempotency.find(principal.subject, idempotency_key, now)
                if earlier is not None:
                    if earlier.fingerprint != fingerprint:
                        raise IdempotencyKeyReused(idempotency_key)
                    product = await uow.products.get(earlier.product_id)
                    if product is None:
                        raise IdempotentProductDeleted(idempotency_key)
                    return product, False
            product = Product.new(self.ids.new_id(), spec, now)
            # Ledger rule: a product starting with stock has an "initial" entry for it.
            entry = StockEntry.initial(self.ids.new_id(), product)
            if idempotency_key is not None:
                # The key goes in first, so a concurrent retry collides on the key, not the sku.
                record = IdempotencyRecord(
                    principal.subject,
                    idempotency_key,
                    fingerprint,
                    product.id,
                    now,
                    now + self.idempotency_ttl,
                )
                await uow.idempotency.add(record)
            await uow.products.add(product, entry)
            await uow.commit()
        return product, True


@attrs.frozen
class ReplaceProduct:
    """A full write; a changed quantity gets its "set" ledger entry in the same step."""

    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator

    async def __call__(
        self,
        principal: Principal,
        product_id: UUID,
        spec: ProductSpec,
        expected_version: int | None = None,
    ) -> Product:
        principal.require(WRITE_SCOPE)
        # One UPDATE, a compare-and-set when expected_version is given.
        async with self.uow(atomic=False) as uow:
            product = await uow.products.replace(
                product_id, spec, self.clock.now(), expected_version, entry_id=self.ids.new_id()
            )
            if product is not None:
                return product
            await refuse_miss(uow.products, product_id, expected_version)
        # The product is there as expected: reservations may hold it.
        return await replace_locked(
            self.uow, product_id, lambda _: spec, expected_version, self.clock, self.ids
        )


@attrs.frozen
class PatchProduct:
    """Partial update by JSON merge patch, validated by the same invariants as a full write.

    A changed quantity gets its "set" ledger entry, as on a full write.
    """

    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator

    async def __call__(
        self,
        principal: Principal,
        product_id: UUID,
        patch: Mapping[str, Any],
        expected_version: int | None = None,
    ) -> Product:
        principal.require(WRITE_SCOPE)
        ProductSpec.check_patch(patch)
        for _ in range(_CAS_ATTEMPTS):
            # The compare-and-set on the version read keeps this safe without a transaction.
            async with self.uow(atomic=False) as uow:
                current = await uow.products.get(product_id)
                if current is None:
                    raise ProductNotFound(product_id)
                if expected_version is not None and current.version != expected_version:
                    raise VersionMismatch(expected_version, current.version)
                spec = current.spec.merged(patch)
                product = await uow.products.replace(
                    product_id,
                    spec,
                    self.clock.now(),
                    current.version,
                    entry_id=self.ids.new_id(),
                )
                if product is not None:
                    return product
                latest = await uow.products.get(product_id)
                if latest is not None and latest.version == current.version:
                    # Nobody moved it on (its holds may have): reservations stopped the write.
                    return await replace_locked(
                        self.uow,
                        product_id,
                        lambda locked: locked.spec.merged(patch),
                        expected_version,
                        self.clock,
                        self.ids,
                    )
        raise WriteContention(product_id)


@attrs.frozen
class DeleteProduct:
    uow: UnitOfWorkFactory
    clock: Clock

    async def __call__(
        self, principal: Principal, product_id: UUID, expected_version: int | None = None
    ) -> None:
        principal.require(WRITE_SCOPE)
        async with self.uow(atomic=False) as uow:
            if await uow.products.delete(product_id, self.clock.now(), expected_version):
                return
            await refuse_miss(uow.products, product_id, expected_version)
        # The product is there as expected: reservations may hold it.
        async with self.uow() as uow:
            current = await locked_product(uow.products, product_id, expected_version)
            if current.held:
                raise StockHeld(current.held)
            await uow.products.delete(product_id, self.clock.now(), None, holds_locked=True)
            await uow.commit()


def _fingerprint(spec: ProductSpec) -> str:
    canonical = repr(attrs.astuple(spec)).encode()
    return hashlib.sha256(canonical).hexdigest()


@attrs.frozen
class PruneIdempotencyKeys:
    """Removes expired idempotency records, so the table holds only what a retry can still use."""

    uow: UnitOfWorkFactory
    clock: Clock

    async def __call__(self) -> int:
        async with self.uow(atomic=False) as uow:
            return await uow.idempotency.prune(self.clock.now())
