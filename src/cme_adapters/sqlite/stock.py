"""Stock and batch writes on SQLAlchemy's engine (the SQLite adapter): a few statements each,
always in one transaction."""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from cme_adapters.sql import statements, stock_statements
from cme_adapters.sql.codecs import (
    entry_of,
    ledger_page,
    ledger_parameters,
    product_of,
    product_values,
)
from cme_adapters.sql.outbox import INSERT_CHANGE, change_values
from cme_domain.batch import BatchItem
from cme_domain.changes import ChangeType
from cme_domain.errors import SkusTaken
from cme_domain.ports import LedgerPage, LedgerQuery
from cme_domain.product import Product
from cme_domain.stock import StockChange, StockEntry

T = TypeVar("T")


class _Runner(Protocol):
    async def __call__(self, work: Callable[[Connection], T], /) -> T: ...


def entry_values(entry: StockEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.id,
        "entry_product_id": entry.product_id,
        "entry_delta": entry.delta,
        "entry_reason": entry.reason,
        "entry_reference": entry.reference,
        "entry_quantity_after": entry.quantity_after,
        "entry_version_after": entry.version_after,
        "entry_created_at": entry.created_at,
    }


def record(db: Connection, entry: StockEntry | None) -> None:
    if entry is not None:
        db.execute(stock_statements.INSERT_ENTRY, entry_values(entry))


def _change(kind: ChangeType, product: Product) -> dict[str, Any]:
    return change_values(kind, product.id, product.version, product.updated_at, product)


class SqlStockMixin:
    """The stock half of SqlProductRepository."""

    _run: _Runner
    _together: _Runner

    async def adjust(
        self,
        product_id: UUID,
        change: StockChange,
        entry_id: UUID,
        now: datetime,
        expected_version: int | None,
        *,
        holds_locked: bool = False,
    ) -> StockEntry | None:
        params: dict[str, Any] = {
            "product_id": product_id,
            "delta": change.delta,
            "updated_at": now,
            "holds_locked": holds_locked,
        }
        statement = stock_statements.ADJUST
        if expected_version is not None:
            statement = stock_statements.ADJUST_AT_VERSION
            params["expected_version"] = expected_version

        def adjust(db: Connection) -> StockEntry | None:
            row = db.execute(statement, params).first()
            if row is None:
                return None
            product = product_of(row)
            entry = StockEntry.of(entry_id, product, change.delta, change.reason, change.reference)
            record(db, entry)
            db.execute(INSERT_CHANGE, _change(ChangeType.STOCK_ADJUSTED, product))
            return entry

        return await self._together(adjust)

    async def write_batch(
        self, candidates: Sequence[Product], entry_ids: Sequence[UUID], *, upsert: bool
    ) -> tuple[BatchItem, ...]:
        skus = [c.sku for c in candidates]

        def write(db: Connection) -> tuple[BatchItem, ...]:
            db.execute(stock_statements.TAKE_WRITE_LOCK)
            found = db.execute(stock_statements.EXISTING_BY_SKU, {"skus": skus}).all()
            existing = {p.sku: p for p in map(product_of, found)}
            if existing and not upsert:
                taken = [i for i, sku in enumerate(skus) if sku in existing]
                raise SkusTaken(taken, "these skus already exist")
            items: list[BatchItem] = []
            new: list[dict[str, Any]] = []
            entries: list[dict[str, Any]] = []
            changes: list[dict[str, Any]] = []
            for candidate, entry_id in zip(candidates, entry_ids, strict=True):
                current = existing.get(candidate.sku)
                if current is None:
                    new.append(product_values(candidate))
                    entry = StockEntry.initial(entry_id, candidate)
                    items.append(BatchItem(True, candidate))
                else:
                    revised = current.revised(candidate.spec, candidate.updated_at)
                    # Unguarded: the use case counts the holds once the batch is written.
                    replaced = {**product_values(revised), "product_id": current.id}
                    db.execute(statements.REPLACE, {**replaced, "holds_locked": True})
                    entry = StockEntry.setting(entry_id, revised, current.quantity)
                    items.append(BatchItem(False, revised))
                if entry is not None:
                    entries.append(entry_values(entry))
                item = items[-1]
                kind = ChangeType.CREATED if item.created else ChangeType.UPDATED
                changes.append(_change(kind, item.product))
            if new:
                db.execute(statements.INSERT, new)
            if entries:
                db.execute(stock_statements.INSERT_ENTRY, entries)
            # Last, and in input order: the events' ids follow the batch's order.
            db.execute(INSERT_CHANGE, changes)
            return tuple(items)

        try:
            return await self._together(write)
        except IntegrityError:
            # Only a sku taken between the read and the write gets here.
            raise SkusTaken([], "a sku of the batch was taken meanwhile; retry") from None

    async def stock_entry(self, entry_id: UUID) -> StockEntry | None:
        params = {"entry_id": entry_id}
        row = await self._run(lambda db: db.execute(stock_statements.GET_ENTRY, params).first())
        return None if row is None else entry_of(row)

    async def stock_entries(self, product_id: UUID, query: LedgerQuery) -> LedgerPage:
        params = ledger_parameters(product_id, query)
        statement = stock_statements.LEDGER_PAGE
        if query.after is not None:
            statement = stock_statements.LEDGER_PAGE_AFTER
        rows = await self._run(lambda db: db.execute(statement, params).all())
        return ledger_page(rows, query)
