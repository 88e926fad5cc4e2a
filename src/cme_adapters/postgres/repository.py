"""The product repository and idempotency store on psycopg: compiled text in, tuples out."""

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID

import attrs
from psycopg import errors

from cme_adapters.postgres import search
from cme_adapters.postgres.compiled import compiled
from cme_adapters.postgres.stock import PostgresStockMixin
from cme_adapters.sql import holds, statements, stock_statements
from cme_adapters.sql.codecs import (
    held_product_of,
    may_be_held,
    new_values,
    product_of,
    product_page,
    product_values,
)
from cme_domain.errors import DuplicateSku, IdempotentRequestInProgress
from cme_domain.listing import Page, ProductQuery, search_fold
from cme_domain.ports import Clock, IdempotencyRecord
from cme_domain.product import Product, ProductSpec
from cme_domain.stock import StockEntry

Row = tuple[Any, ...]

_GET: Final = compiled(statements.GET)
_GET_MANY: Final = compiled(statements.GET_ANY)
_LOCK: Final = compiled(statements.LOCK_ANY)
_HELD_BY_ID: Final = compiled(holds.HELD_BY_ID_ANY)
# Every product write records its change event in the same statement (sql/outbox.py).
_INSERT: Final = compiled(statements.INSERT_RECORDED)
_INSERT_WITH_ENTRY: Final = compiled(stock_statements.INSERT_WITH_ENTRY)
_REPLACE: Final = compiled(stock_statements.REPLACE_WITH_ENTRY)
_REPLACE_AT_VERSION: Final = compiled(stock_statements.REPLACE_AT_VERSION_WITH_ENTRY)
_DELETE: Final = compiled(statements.DELETE_RECORDED)
_DELETE_AT_VERSION: Final = compiled(statements.DELETE_AT_VERSION_RECORDED)
_FIND_KEY: Final = compiled(statements.FIND_KEY)
_DROP_EXPIRED_KEY: Final = compiled(statements.DROP_EXPIRED_KEY)
_INSERT_KEY: Final = compiled(statements.INSERT_KEY)
_PRUNE_KEYS: Final = compiled(statements.PRUNE_KEYS)
_SKU_CONSTRAINT: Final = "uq_products_sku"


class Session(Protocol):
    """Where the statements run: the unit of work, which owns connections and timing."""

    async def fetch_one(self, sql: str, params: dict[str, Any], *, writes: bool) -> Row | None: ...

    async def fetch_all(self, sql: str, params: dict[str, Any]) -> list[Row]: ...

    async def execute(self, sql: str, params: dict[str, Any]) -> int: ...

    def changed(self) -> None:
        """The statement just run wrote change events: readers may be told once they commit."""


@functools.cache
def _page_sql(**shape: Any) -> str:
    return compiled(statements.page_of(**shape))


@functools.cache
def _search_sql(walk: int, **shape: Any) -> str:
    return compiled(search.search_page_of(walk, **shape))


def page_sql(query: ProductQuery) -> str:
    """The statement for this query's page; with `q`, the bounded two-step one (search.py).

    A sku names one product at most, which its unique index finds: `q` then needs no walk; nor
    does a `q` without a trigram, which the index cannot serve.
    """
    shape = {
        "sort": query.sort,
        "order": query.order,
        "after": query.after is not None,
        "min_price": query.min_price is not None,
        "max_price": query.max_price is not None,
    }
    q = query.name_contains
    if q is not None and query.sku is None and search.has_trigram(search_fold(q)):
        return _search_sql(search.WALK, **shape)
    return _page_sql(sku=query.sku is not None, name=query.name_contains is not None, **shape)


class PostgresProductRepository(PostgresStockMixin):
    def __init__(self, session: Session, clock: Clock) -> None:
        self._session = session
        self._clock = clock  # what `held` counts by

    async def lock(self, product_ids: Sequence[UUID]) -> None:
        await self._session.fetch_all(_LOCK, {"ids": list(product_ids)})

    async def add(self, product: Product, entry: StockEntry | None = None) -> None:
        values = product_values(product)
        sql = _INSERT
        if entry is not None:
            sql = _INSERT_WITH_ENTRY
            values["entry_id"], values["entry_delta"] = entry.id, entry.delta
        try:
            await self._session.execute(sql, values)
        except errors.UniqueViolation as error:
            if error.diag.constraint_name == _SKU_CONSTRAINT:
                raise DuplicateSku(product.sku) from None
            raise
        self._session.changed()

    async def get(self, product_id: UUID) -> Product | None:
        now = self._clock.now()
        row = await self._session.fetch_one(_GET, {"id": product_id, "now": now}, writes=False)
        if row is None:
            return None
        return held_product_of(row, await self._held([row], now))

    async def get_many(self, product_ids: Sequence[UUID]) -> dict[UUID, Product]:
        now = self._clock.now()
        rows = await self._session.fetch_all(_GET_MANY, {"ids": list(product_ids), "now": now})
        held = await self._held(rows, now)
        return {p.id: p for p in (held_product_of(row, held) for row in rows)}

    async def list(self, query: ProductQuery) -> Page:
        now = self._clock.now()
        sql = page_sql(query)
        rows = await self._session.fetch_all(sql, statements.page_parameters(query, now))
        return product_page(rows, query, await self._held(rows[: query.limit], now))

    async def _held(self, rows: Sequence[Row], now: datetime) -> dict[UUID, int]:
        """The units held of the products in rows that a live hold may be on: a statement
        only when there are some."""
        ids = may_be_held(rows)
        if not ids:
            return {}
        found = await self._session.fetch_all(_HELD_BY_ID, {"ids": ids, "now": now})
        return {product_id: int(units) for product_id, units in found}

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
        values = {
            **new_values(spec, now),
            "entry_id": entry_id,
            "product_id": product_id,
            "holds_locked": holds_locked,
        }
        sql = _REPLACE
        if expected_version is not None:
            sql = _REPLACE_AT_VERSION
            values["expected_version"] = expected_version
        try:
            row = await self._session.fetch_one(sql, values, writes=True)
        except errors.UniqueViolation as error:
            if error.diag.constraint_name == _SKU_CONSTRAINT:
                raise DuplicateSku(spec.sku) from None
            raise
        if row is None:
            return None
        self._session.changed()
        return product_of(row)

    async def delete(
        self,
        product_id: UUID,
        now: datetime,
        expected_version: int | None,
        *,
        holds_locked: bool = False,
    ) -> bool:
        params: dict[str, Any] = {
            "product_id": product_id,
            "occurred_at": now,
            "holds_locked": holds_locked,
        }
        sql = _DELETE
        if expected_version is not None:
            sql = _DELETE_AT_VERSION
            params["expected_version"] = expected_version
        deleted = await self._session.execute(sql, params) == 1
        if deleted:
            self._session.changed()
        return deleted


class PostgresIdempotencyStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def find(self, owner: str, key: str, now: datetime) -> IdempotencyRecord | None:
        params = {"owner": owner, "key": key, "now": now}
        row = await self._session.fetch_one(_FIND_KEY, params, writes=False)
        return None if row is None else IdempotencyRecord(*row)

    async def add(self, record: IdempotencyRecord) -> None:
        expired = {"owner": record.owner, "key": record.key, "now": record.created_at}
        try:
            await self._session.execute(_DROP_EXPIRED_KEY, expired)
            await self._session.execute(_INSERT_KEY, attrs.asdict(record))
        except errors.UniqueViolation:
            raise IdempotentRequestInProgress(record.key) from None

    async def prune(self, now: datetime) -> int:
        return await self._session.execute(_PRUNE_KEYS, {"now": now})
