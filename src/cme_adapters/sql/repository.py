"""The product repository and idempotency store on SQLAlchemy Core."""

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar
from uuid import UUID

import attrs
from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    bindparam,
    delete,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from cme_adapters.sql.schema import idempotency_keys, products
from cme_domain.errors import DuplicateSku, IdempotentRequestInProgress
from cme_domain.listing import Page, ProductQuery, SortField, SortOrder, keyset_of
from cme_domain.ports import IdempotencyRecord
from cme_domain.product import Product, ProductSpec

T = TypeVar("T")


class Runner(Protocol):
    """Runs synchronous work on a connection, off the event loop's stack (the unit of work)."""

    async def __call__(self, work: Callable[[Connection], T], /) -> T: ...


_SORT_COLUMNS: Final = {
    SortField.CREATED_AT: products.c.created_at,
    SortField.NAME: products.c.name,
    SortField.PRICE: products.c.price_cents,
}

# Built once: SQLAlchemy then reuses their compiled form, and psycopg prepares them.
_GET: Final = select(products).where(products.c.id == bindparam("id"))
_INSERT: Final = insert(products)
_NEW_VALUES: Final = {
    "sku": bindparam("sku"),
    "name": bindparam("name"),
    "description": bindparam("description"),
    "price_cents": bindparam("price_cents", type_=products.c.price_cents.type),
    "quantity": bindparam("quantity"),
    "updated_at": bindparam("updated_at", type_=products.c.updated_at.type),
    "version": products.c.version + 1,
}
_REPLACE: Final = (
    update(products)
    .where(products.c.id == bindparam("product_id"))
    .values(_NEW_VALUES)
    .returning(*products.c)
)
_REPLACE_AT_VERSION: Final = _REPLACE.where(products.c.version == bindparam("expected_version"))
_DELETE: Final = delete(products).where(products.c.id == bindparam("product_id"))
_DELETE_AT_VERSION: Final = _DELETE.where(products.c.version == bindparam("expected_version"))
_INSERT_KEY: Final = insert(idempotency_keys)
_FIND_KEY: Final = select(idempotency_keys).where(
    idempotency_keys.c.owner == bindparam("owner"),
    idempotency_keys.c.key == bindparam("key"),
    idempotency_keys.c.expires_at > bindparam("now", type_=idempotency_keys.c.expires_at.type),
)
_DROP_EXPIRED_KEY: Final = delete(idempotency_keys).where(
    idempotency_keys.c.owner == bindparam("owner"),
    idempotency_keys.c.key == bindparam("key"),
    idempotency_keys.c.expires_at <= bindparam("now", type_=idempotency_keys.c.expires_at.type),
)


def _product(row: Row[Any]) -> Product:
    id_, sku, name, description, price, quantity, created_at, updated_at, version = tuple(row)
    return Product(id_, sku, name, description, price, quantity, created_at, updated_at, version)


def _is_violation_of(error: IntegrityError, column: str) -> bool:
    # PostgreSQL names the constraint (uq_products_sku); SQLite names the column (products.sku).
    return f"products_{column}" in str(error.orig) or f"products.{column}" in str(error.orig)


class SqlProductRepository:
    def __init__(self, run: Runner) -> None:
        self._run = run

    async def add(self, product: Product) -> None:
        values = {
            "id": product.id,
            "sku": product.sku,
            "name": product.name,
            "description": product.description,
            "price_cents": product.price,
            "quantity": product.quantity,
            "created_at": product.created_at,
            "updated_at": product.updated_at,
            "version": product.version,
        }
        try:
            await self._run(lambda db: db.execute(_INSERT, values))
        except IntegrityError as error:
            if _is_violation_of(error, "sku"):
                raise DuplicateSku(product.sku) from None
            raise

    async def get(self, product_id: UUID) -> Product | None:
        row = await self._run(lambda db: db.execute(_GET, {"id": product_id}).first())
        return None if row is None else _product(row)

    async def list(self, query: ProductQuery) -> Page:
        statement = _page_of(query.sort, query.order, after=query.after is not None)
        if filters := _filters(query):
            statement = statement.where(*filters)
        params: dict[str, object] = {"limit": query.limit + 1}
        if query.after is not None:
            params["after_value"], params["after_id"] = query.after.value, query.after.id
        rows = await self._run(lambda db: db.execute(statement, params).all())
        page = [_product(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return Page(tuple(page), keyset_of(page[-1], query.sort) if more else None)

    async def replace(
        self, product_id: UUID, spec: ProductSpec, now: datetime, expected_version: int | None
    ) -> Product | None:
        values = {
            "product_id": product_id,
            "sku": spec.sku,
            "name": spec.name,
            "description": spec.description,
            "price_cents": spec.price,
            "quantity": spec.quantity,
            "updated_at": now,
        }
        statement = _REPLACE
        if expected_version is not None:
            statement = _REPLACE_AT_VERSION
            values["expected_version"] = expected_version
        try:
            row = await self._run(lambda db: db.execute(statement, values).first())
        except IntegrityError as error:
            if _is_violation_of(error, "sku"):
                raise DuplicateSku(spec.sku) from None
            raise
        return None if row is None else _product(row)

    async def delete(self, product_id: UUID, expected_version: int | None) -> bool:
        params: dict[str, object] = {"product_id": product_id}
        statement = _DELETE
        if expected_version is not None:
            statement = _DELETE_AT_VERSION
            params["expected_version"] = expected_version
        deleted = await self._run(lambda db: db.execute(statement, params).rowcount)
        return deleted == 1


def _filters(query: ProductQuery) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if query.sku is not None:
        filters.append(products.c.sku == query.sku)
    if query.name_contains is not None:
        filters.append(products.c.name.icontains(query.name_contains, autoescape=True))
    if query.min_price is not None:
        filters.append(products.c.price_cents >= query.min_price)
    if query.max_price is not None:
        filters.append(products.c.price_cents <= query.max_price)
    return filters


@functools.cache
def _page_of(sort: SortField, order: SortOrder, *, after: bool) -> Select[Any]:
    """A page in keyset order, built once per shape: building a select costs more than a row."""
    column = _SORT_COLUMNS[sort]
    descending = order is SortOrder.DESC
    statement = select(products)
    if after:
        mine = tuple_(column, products.c.id)
        theirs = tuple_(
            bindparam("after_value", type_=column.type),
            bindparam("after_id", type_=products.c.id.type),
        )
        statement = statement.where(mine < theirs if descending else mine > theirs)
    ordering = (column.desc(), products.c.id.desc()) if descending else (column, products.c.id)
    return statement.order_by(*ordering).limit(bindparam("limit"))


class SqlIdempotencyStore:
    def __init__(self, run: Runner) -> None:
        self._run = run

    async def find(self, owner: str, key: str, now: datetime) -> IdempotencyRecord | None:
        params = {"owner": owner, "key": key, "now": now}
        row = await self._run(lambda db: db.execute(_FIND_KEY, params).first())
        return None if row is None else IdempotencyRecord(*row)

    async def add(self, record: IdempotencyRecord) -> None:
        expired = {"owner": record.owner, "key": record.key, "now": record.created_at}

        def replace_expired(db: Connection) -> None:
            db.execute(_DROP_EXPIRED_KEY, expired)
            db.execute(_INSERT_KEY, attrs.asdict(record))

        try:
            await self._run(replace_expired)
        except IntegrityError:
            raise IdempotentRequestInProgress(record.key) from None
