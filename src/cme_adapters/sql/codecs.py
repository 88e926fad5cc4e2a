"""Products as the shared statements bind and return them, for both databases: money as
integer cents, the name beside its folded form."""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from cme_domain.listing import Keyset, Page, ProductQuery, keyset_of, search_fold
from cme_domain.ports import LedgerPage, LedgerQuery
from cme_domain.product import Product, ProductSpec
from cme_domain.stock import StockEntry


def cents(price: Decimal) -> int:
    return int(price.scaleb(2))


def price_of(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def product_of(row: Sequence[Any]) -> Product:
    """The Product in a row that starts with schema.PRODUCT_COLUMNS."""
    id_, sku, name, description, price_cents, quantity, created_at, updated_at, version = row[:9]
    price = price_of(price_cents)
    return Product(id_, sku, name, description, price, quantity, created_at, updated_at, version)


def product_values(product: Product) -> dict[str, Any]:
    """What statements.INSERT binds for the product."""
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "name_folded": search_fold(product.name),
        "description": product.description,
        "price_cents": cents(product.price),
        "quantity": product.quantity,
        "created_at": product.created_at,
        "updated_at": product.updated_at,
        "version": product.version,
    }


def new_values(spec: ProductSpec, now: datetime) -> dict[str, Any]:
    """What statements.NEW_VALUES binds: a product's state after a replace at `now`."""
    return {
        "sku": spec.sku,
        "name": spec.name,
        "name_folded": search_fold(spec.name),
        "description": spec.description,
        "price_cents": cents(spec.price),
        "quantity": spec.quantity,
        "updated_at": now,
    }


def product_page(rows: Sequence[Sequence[Any]], query: ProductQuery) -> Page:
    """The page in the rows of statements.page_statement(query): one row more than the page
    when there is a next one."""
    items = [product_of(row) for row in rows[: query.limit]]
    more = len(rows) > query.limit
    return Page(tuple(items), keyset_of(items[-1], query.sort) if more else None)


def entry_of(row: Sequence[Any]) -> StockEntry:
    """The ledger entry in a row of stock_ledger's columns."""
    return StockEntry(*row)


def ledger_parameters(product_id: UUID, query: LedgerQuery) -> dict[str, Any]:
    """What stock_statements.ledger_page(after=query.after is not None) binds."""
    params: dict[str, Any] = {"product_id": product_id, "limit": query.limit + 1}
    if query.after is not None:
        params["after_version"], params["after_id"] = query.after.value, query.after.id
    return params


def ledger_page(rows: Sequence[Sequence[Any]], query: LedgerQuery) -> LedgerPage:
    """The page in the rows of that statement, which asks for one row more than the page."""
    entries = [entry_of(row) for row in rows[: query.limit]]
    last = entries[-1] if len(rows) > query.limit else None
    after = None if last is None else Keyset(last.version_after, last.id)
    return LedgerPage(tuple(entries), after)
