"""The product repository and idempotency store on SQLAlchemy's engine (the SQLite adapter)."""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar
from uuid import UUID

import attrs
from sqlalchemy import Connection, Executable, Row
from sqlalchemy.exc import IntegrityError

from cme_adapters.sql import holds, statements, stock_statements
from cme_adapters.sql.codecs import (
    held_product_of,
    may_be_held,
    new_values,
    product_of,
    product_page,
    product_values,
)
from cme_adapters.sql.outbox import INSERT_CHANGE, change_values
from cme_adapters.sql.schema import products
from cme_adapters.sqlite.stock import SqlStockMixin, record
from cme_domain.changes import ChangeType
from cme_domain.errors import DuplicateSku, IdempotentRequestInProgress
from cme_domain.listing import Page, ProductQuery
from cme_domain.ports import Clock, IdempotencyRecord
from cme_domain.product import Product, ProductSpec
from cme_domain.stock import StockEntry

T = TypeVar("T")

# The deleted version, for the delete's change event.
_DELETE: Final = statements.DELETE.returning(products.c.version)
_DELETE_AT_VERSION: Final = statements.DELETE_AT_VERSION.returning(products.c.version)


class Runner(Protocol):
    """Runs synchronous work on a connection, off the event loop's stack (the unit of work)."""

    async def __call__(self, work: Callable[[Connection], T], /) -> T: ...


def _is_violation_of(error: IntegrityError, column: str) -> bool:
    # PostgreSQL names the constraint (uq_products_sku); SQLite names the column (products.sku).
    return f"products_{column}" in str(error.orig) or f"products.{column}" in str(error.orig)


class SqlProductRepository(SqlStockMixin):
    """Every write runs with its change event (sql/outbox.py) in one transaction (`together`).

    A write takes SQLite's one write lock at its first statement and keeps it to its commit,
    so writers commit in the order they inserted their events: an event's id can serve as its
    feed position.
    """

    def __init__(self, run: Runner, together: Runner, clock: Clock) -> None:
        self._run = run
        self._together = together
        self._clock = clock  # what `held` counts by

    async def lock(self, product_ids: Sequence[UUID]) -> None:
        """SQLite has one writer at a time: taking its lock now keeps every other writer off
        these products, and the transaction's reads from here on see every commit before it."""
        await self._run(lambda db: db.execute(stock_statements.TAKE_WRITE_LOCK))

    async def add(self, product: Product, entry: StockEntry | None = None) -> None:
        values = product_values(product)
        change = change_values(
            ChangeType.CREATED, product.id, product.version, product.updated_at, product
        )

        def insert(db: Connection) -> None:
            db.execute(statements.INSERT, values)
            record(db, entry)
            db.execute(INSERT_CHANGE, change)

        try:
            await self._together(insert)
        except IntegrityError as error:
            if _is_violation_of(error, "sku"):
                raise DuplicateSku(product.sku) from None
            raise

    async def get(self, product_id: UUID) -> Product | None:
        params = {"id": product_id, "now": self._clock.now()}
        rows, held = await self._run(lambda db: _read(db, statements.GET, params))
        return held_product_of(rows[0], held) if rows else None

    async def get_many(self, product_ids: Sequence[UUID]) -> dict[UUID, Product]:
        params = {"ids": list(product_ids), "now": self._clock.now()}
        rows, held = await self._run(lambda db: _read(db, statements.GET_MANY, params))
        return {p.id: p for p in (held_product_of(row, held) for row in rows)}

    async def list(self, query: ProductQuery) -> Page:
        statement = statements.page_statement(query)
        params = statements.page_parameters(query, self._clock.now())
        rows, held = await self._run(lambda db: _read(db, statement, params))
        return product_page(rows, query, held)

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
        values = {**new_values(spec, now), "product_id": product_id, "holds_locked": holds_locked}
        statement = statements.REPLACE
        if expected_version is not None:
            statement = statements.REPLACE_AT_VERSION
            values["expected_version"] = expected_version

        def replace(db: Connection) -> Product | None:
            db.execute(stock_statements.TAKE_WRITE_LOCK)
            old = db.execute(stock_statements.OLD_QUANTITY, {"product_id": product_id}).first()
            row = db.execute(statement, values).first()
            if row is None or old is None:
                return None
            product = product_of(row)
            record(db, StockEntry.setting(entry_id, product, old[0]))
            db.execute(
                INSERT_CHANGE,
                change_values(ChangeType.UPDATED, product_id, product.version, now, product),
            )
            return product

        try:
            return await self._together(replace)
        except IntegrityError as error:
            if _is_violation_of(error, "sku"):
                raise DuplicateSku(spec.sku) from None
            raise

    async def delete(
        self,
        product_id: UUID,
        now: datetime,
        expected_version: int | None,
        *,
        holds_locked: bool = False,
    ) -> bool:
        params: dict[str, object] = {
            "product_id": product_id,
            "occurred_at": now,
            "holds_locked": holds_locked,
        }
        statement = _DELETE
        if expected_version is not None:
            statement = _DELETE_AT_VERSION
            params["expected_version"] = expected_version

        def delete(db: Connection) -> bool:
            version = db.execute(statement, params).scalar()
            if version is not None:
                change = change_values(ChangeType.DELETED, product_id, version + 1, now, None)
                db.execute(INSERT_CHANGE, change)
            return version is not None

        deleted: bool = await self._together(delete)
        return deleted


def _read(
    db: Connection, statement: Executable, params: dict[str, Any]
) -> tuple[Sequence[Row[Any]], dict[UUID, int]]:
    """The rows of a read of products, and the units held of those a live hold may be on,
    counted on the same connection."""
    rows = db.execute(statement, params).all()
    ids = may_be_held(rows)
    if not ids:
        return rows, {}
    found = db.execute(holds.HELD_BY_ID, {"ids": ids, "now": params["now"]}).all()
    return rows, {product_id: int(units) for product_id, units in found}


class SqlIdempotencyStore:
    def __init__(self, run: Runner) -> None:
        self._run = run

    async def find(self, owner: str, key: str, now: datetime) -> IdempotencyRecord | None:
        params = {"owner": owner, "key": key, "now": now}
        row = await self._run(lambda db: db.execute(statements.FIND_KEY, params).first())
        return None if row is None else IdempotencyRecord(*row)

    async def add(self, record: IdempotencyRecord) -> None:
        expired = {"owner": record.owner, "key": record.key, "now": record.created_at}

        def replace_expired(db: Connection) -> None:
            db.execute(statements.DROP_EXPIRED_KEY, expired)
            db.execute(statements.INSERT_KEY, attrs.asdict(record))

        try:
            await self._run(replace_expired)
        except IntegrityError:
            raise IdempotentRequestInProgress(record.key) from None

    async def prune(self, now: datetime) -> int:
        deleted: int = await self._run(
            lambda db: db.execute(statements.PRUNE_KEYS, {"now": now}).rowcount
        )
        return deleted
