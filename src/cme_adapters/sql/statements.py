"""Every statement the repositories run, built once with SQLAlchemy Core for both drivers.

SQLite runs them through SQLAlchemy's engine, whose column types convert the values; the
PostgreSQL adapter sends their compiled text straight to psycopg and converts values itself.
"""

import functools
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    FromClause,
    Select,
    String,
    any_,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    tuple_,
    update,
)

from cme_adapters.sql.codecs import cents
from cme_adapters.sql.column_types import UtcDateTime
from cme_adapters.sql.holds import holds_allow, may_hold
from cme_adapters.sql.outbox import with_change
from cme_adapters.sql.schema import PRODUCT_COLUMNS, idempotency_keys, products, service_secrets
from cme_domain.changes import ChangeType
from cme_domain.listing import ProductQuery, SortField, SortOrder, search_fold

SORT_COLUMNS: Final = {
    SortField.CREATED_AT: products.c.created_at,
    SortField.NAME: products.c.name,
    SortField.PRICE: products.c.price_cents,
}
LIKE_ESCAPE: Final = "/"

# Every read of products says which of them a live hold may be on at the bound `now`
# (holds.may_hold); the repository then counts those products' holds.
READ_COLUMNS: Final = (*PRODUCT_COLUMNS, may_hold(products))
GET: Final = select(*READ_COLUMNS).where(products.c.id == bindparam("id"))
# Products by id: SQLite binds one parameter per id, PostgreSQL one array (GET_ANY).
GET_MANY: Final = select(*READ_COLUMNS).where(products.c.id.in_(bindparam("ids", expanding=True)))
_ANY_ID: Final = any_(bindparam("ids", type_=ARRAY(products.c.id.type)))
GET_ANY: Final = select(*READ_COLUMNS).where(products.c.id == _ANY_ID)
# PostgreSQL: the rows locked in id order, so two lockers of the same products never deadlock.
LOCK_ANY: Final = (
    select(products.c.id).where(products.c.id == _ANY_ID).order_by(products.c.id).with_for_update()
)
# A new product is held by nothing: held_until stays null.
INSERT: Final = insert(products).values(
    {c.name: bindparam(c.name, type_=c.type) for c in products.c if c is not products.c.held_until}
)
NEW_VALUES: Final = {
    "sku": bindparam("sku"),
    "name": bindparam("name"),
    "name_folded": bindparam("name_folded"),
    "description": bindparam("description"),
    "price_cents": bindparam("price_cents", type_=products.c.price_cents.type),
    "quantity": bindparam("quantity"),
    "updated_at": bindparam("updated_at", type_=products.c.updated_at.type),
    # A literal, not a bound 1: compiled text then needs no parameter of SQLAlchemy's own.
    "version": products.c.version + literal_column("1"),
}
# A replace may set the quantity below the units held, a delete take them all: both bind
# holds_locked (holds.holds_allow), at their own time.
REPLACE_GUARD: Final = holds_allow(NEW_VALUES["updated_at"])
REPLACE: Final = (
    update(products)
    .where(products.c.id == bindparam("product_id"), REPLACE_GUARD)
    .values(NEW_VALUES)
    .returning(*PRODUCT_COLUMNS)
)
REPLACE_AT_VERSION: Final = REPLACE.where(products.c.version == bindparam("expected_version"))
DELETE: Final = delete(products).where(
    products.c.id == bindparam("product_id"),
    holds_allow(bindparam("occurred_at", type_=UtcDateTime)),
)
DELETE_AT_VERSION: Final = DELETE.where(products.c.version == bindparam("expected_version"))

# The same writes recording their change event in the same statement (PostgreSQL, outbox.py).
INSERT_RECORDED: Final = with_change(INSERT.returning(*PRODUCT_COLUMNS), ChangeType.CREATED)
DELETE_RECORDED: Final = with_change(DELETE.returning(*PRODUCT_COLUMNS), ChangeType.DELETED)
DELETE_AT_VERSION_RECORDED: Final = with_change(
    DELETE_AT_VERSION.returning(*PRODUCT_COLUMNS), ChangeType.DELETED
)

_KEY_TIME: Final = idempotency_keys.c.expires_at.type
INSERT_KEY: Final = insert(idempotency_keys).values(
    {c.name: bindparam(c.name, type_=c.type) for c in idempotency_keys.c}
)
FIND_KEY: Final = select(idempotency_keys).where(
    idempotency_keys.c.owner == bindparam("owner"),
    idempotency_keys.c.key == bindparam("key"),
    idempotency_keys.c.expires_at > bindparam("now", type_=_KEY_TIME),
)
DROP_EXPIRED_KEY: Final = delete(idempotency_keys).where(
    idempotency_keys.c.owner == bindparam("owner"),
    idempotency_keys.c.key == bindparam("key"),
    idempotency_keys.c.expires_at <= bindparam("now", type_=_KEY_TIME),
)
PRUNE_KEYS: Final = delete(idempotency_keys).where(
    idempotency_keys.c.expires_at <= bindparam("now", type_=_KEY_TIME)
)
SCHEMA_REVISION: Final = "SELECT version_num FROM alembic_version"
FIND_SECRET: Final = select(service_secrets.c.value).where(
    service_secrets.c.name == bindparam("name")
)
INSERT_SECRET: Final = insert(service_secrets).values(
    name=bindparam("name"), value=bindparam("value")
)
CURSOR_SECRET: Final = "cursor-signing-key"  # noqa: S105 (the row's name, not the secret)


@functools.cache
def page_of(
    sort: SortField,
    order: SortOrder,
    *,
    after: bool,
    sku: bool = False,
    name: bool = False,
    min_price: bool = False,
    max_price: bool = False,
) -> Select[Any]:
    """A page in keyset order, built once per shape: building a select costs more than a row.

    The flags say which filters the query has; their values bind as sku, name_pattern,
    min_price_cents and max_price_cents (see `page_parameters`).
    """
    statement = select(*READ_COLUMNS)
    if after:
        statement = statement.where(past_keyset(products, sort, order))
    filters = page_filters(products, sku=sku, name=name, min_price=min_price, max_price=max_price)
    if filters:
        statement = statement.where(*filters)
    return statement.order_by(*ordering(products, sort, order)).limit(bindparam("limit"))


def past_keyset(source: FromClause, sort: SortField, order: SortOrder) -> ColumnElement[bool]:
    """Rows after the keyset bound as after_value and after_id, in the page's order."""
    column = source.c[SORT_COLUMNS[sort].name]
    mine = tuple_(column, source.c.id)
    theirs = tuple_(
        bindparam("after_value", type_=column.type),
        bindparam("after_id", type_=products.c.id.type),
    )
    return mine < theirs if order is SortOrder.DESC else mine > theirs


def page_filters(
    source: FromClause, *, sku: bool, name: bool, min_price: bool, max_price: bool
) -> list[ColumnElement[bool]]:
    """The query's filters on the columns of source (products, or a selection of its rows)."""
    filters: list[ColumnElement[bool]] = []
    if sku:
        filters.append(source.c.sku == bindparam("sku"))
    if name:
        # Both sides folded by the domain's search_fold: the pattern here, the name when written.
        pattern = bindparam("name_pattern", type_=String)
        filters.append(source.c.name_folded.like(pattern, escape=LIKE_ESCAPE))
    if min_price:
        filters.append(source.c.price_cents >= bindparam("min_price_cents", type_=BigInteger))
    if max_price:
        filters.append(source.c.price_cents <= bindparam("max_price_cents", type_=BigInteger))
    return filters


def ordering(source: FromClause, sort: SortField, order: SortOrder) -> tuple[Any, Any]:
    """The page's order on source's columns: the sort column, then id to break ties."""
    column, id_ = source.c[SORT_COLUMNS[sort].name], source.c.id
    return (column.desc(), id_.desc()) if order is SortOrder.DESC else (column, id_)


def page_statement(query: ProductQuery) -> Select[Any]:
    return page_of(
        query.sort,
        query.order,
        after=query.after is not None,
        sku=query.sku is not None,
        name=query.name_contains is not None,
        min_price=query.min_price is not None,
        max_price=query.max_price is not None,
    )


def page_parameters(query: ProductQuery, now: datetime) -> dict[str, Any]:
    """The values `page_statement(query)` binds, prices in cents, holds counted at `now`: the
    same on both drivers."""
    params: dict[str, Any] = {"limit": query.limit + 1, "now": now}
    if query.after is not None:
        value = query.after.value
        params["after_value"] = cents(value) if isinstance(value, Decimal) else value
        params["after_id"] = query.after.id
    if query.sku is not None:
        params["sku"] = query.sku
    if query.name_contains is not None:
        params["name_pattern"] = f"%{like_escaped(search_fold(query.name_contains))}%"
    if query.min_price is not None:
        params["min_price_cents"] = cents(query.min_price)
    if query.max_price is not None:
        params["max_price_cents"] = cents(query.max_price)
    return params


def like_escaped(text: str) -> str:
    """The text as a LIKE pattern that matches it literally."""
    for special in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, LIKE_ESCAPE + special)
    return text
