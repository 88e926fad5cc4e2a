"""The second way of a write that reservations may stop: the product locked, its holds counted.

A write that could take stock runs first as one unlocked statement, which the store refuses
while a hold may be live on the product (ports.ProductRepository). These take it from there.
"""

from collections.abc import Callable
from uuid import UUID

import attrs

from cme_domain.errors import InsufficientStock, ProductNotFound, VersionMismatch, WriteContention
from cme_domain.ports import Clock, IdGenerator, ProductRepository, UnitOfWorkFactory
from cme_domain.product import Product, ProductSpec


async def refuse_miss(
    products: ProductRepository, product_id: UUID, expected_version: int | None
) -> None:
    """A write touched no row: raise if the product is gone or has moved on past the version
    expected; return if it is there as expected (its holds stopped the write)."""
    current = await products.get(product_id)
    if current is None:
        raise ProductNotFound(product_id)
    if expected_version is not None and current.version != expected_version:
        raise VersionMismatch(expected_version, current.version)


async def locked_product(
    products: ProductRepository, product_id: UUID, expected_version: int | None
) -> Product:
    """The product, locked for the rest of the unit of work, as the write expects it."""
    await products.lock([product_id])
    current = await products.get(product_id)
    if current is None:
        raise ProductNotFound(product_id)
    if expected_version is not None and current.version != expected_version:
        raise VersionMismatch(expected_version, current.version)
    return current


async def replace_locked(
    uow: UnitOfWorkFactory,
    product_id: UUID,
    spec_of: Callable[[Product], ProductSpec],
    expected_version: int | None,
    clock: Clock,
    ids: IdGenerator,
) -> Product:
    """A replace that keeps the quantity at or above what reservations hold."""
    async with uow() as locked:
        current = await locked_product(locked.products, product_id, expected_version)
        spec = spec_of(current)
        if spec.quantity < current.held:
            raise InsufficientStock(current.available, spec.quantity - current.quantity)
        product = await locked.products.replace(
            product_id, spec, clock.now(), None, entry_id=ids.new_id(), holds_locked=True
        )
        if product is None:  # locked and found just now: never, but safe
            raise WriteContention(product_id)
        await locked.commit()
    return attrs.evolve(product, held=current.held)
