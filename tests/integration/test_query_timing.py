"""The SQL adapter tells the query latency metric how long each repository call took."""

from datetime import UTC, datetime

import pytest

from cme_adapters.sql.config import PoolSettings
from cme_adapters.system import Uuid7Generator
from cme_domain.errors import DuplicateSku
from cme_domain.listing import ProductQuery
from cme_domain.product import Product, ProductSpec
from tests.integration.databases import open_database

pytestmark = pytest.mark.anyio


async def test_every_repository_call_is_timed_even_when_it_fails(empty_postgres_url: str) -> None:
    seen: list[float] = []
    database = await open_database(empty_postgres_url, PoolSettings(size=2), on_query=seen.append)
    spec = ProductSpec.parse({"sku": "T-1", "name": "Timed", "price": "1.00", "quantity": 1})
    ids = Uuid7Generator()
    product = Product.new(ids.new_id(), spec, datetime.now(UTC))
    same_sku = Product.new(ids.new_id(), spec, datetime.now(UTC))
    try:
        async with database.unit_of_work() as uow:
            await uow.products.add(product)
            await uow.commit()
        async with database.unit_of_work(atomic=False) as uow:
            assert await uow.products.get(product.id) == product
            assert (await uow.products.list(ProductQuery())).items == (product,)
            with pytest.raises(DuplicateSku):
                await uow.products.add(same_sku)
    finally:
        await database.close()
    assert len(seen) == 4
    assert all(0 < seconds < 5 for seconds in seen)
