"""Stock and batch writes on psycopg: one statement each, its ledger entries in CTEs."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    CTE,
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    column,
    func,
    insert,
    literal_column,
    not_,
    null,
    select,
    true,
)
from sqlalchemy.dialects import postgresql

from cme_adapters.postgres.compiled import compiled
from cme_adapters.sql import stock_statements
from cme_adapters.sql.codecs import cents, entry_of, ledger_page, ledger_parameters, product_of
from cme_adapters.sql.column_types import UtcDateTime
from cme_adapters.sql.outbox import PRODUCT_STATE
from cme_adapters.sql.schema import PRODUCT_COLUMNS, product_changes, products, stock_ledger
from cme_domain.batch import BatchItem
from cme_domain.changes import ChangeType
from cme_domain.errors import SkusTaken, WriteContention
from cme_domain.listing import search_fold
from cme_domain.ports import LedgerPage, LedgerQuery
from cme_domain.product import Product
from cme_domain.stock import INITIAL, SET, StockChange, StockEntry

Row = tuple[Any, ...]

_ADJUST: Final = compiled(stock_statements.ADJUST_WITH_ENTRY)
_ADJUST_AT_VERSION: Final = compiled(stock_statements.ADJUST_AT_VERSION_WITH_ENTRY)
_GET_ENTRY: Final = compiled(stock_statements.GET_ENTRY)
_LEDGER_PAGE: Final = compiled(stock_statements.LEDGER_PAGE)
_LEDGER_PAGE_AFTER: Final = compiled(stock_statements.LEDGER_PAGE_AFTER)

# write_batch's arrays: (parameter, input's column, element type). Text, not the columns'
# types: a varchar(64)[] cast would cut an over-long sku short where the INSERT refuses it.
_ARRAYS: Final = (
    ("ids", "id", Uuid),
    ("skus", "sku", Text),
    ("names", "name", Text),
    ("names_folded", "name_folded", Text),
    ("descriptions", "description", Text),
    ("prices", "price_cents", BigInteger),
    ("quantities", "quantity", Integer),
    ("entry_ids", "entry_id", Uuid),
)
_NEW: Final = tuple(name for _, name, _ in _ARRAYS[:-1])
_REPLACED: Final = ("name", "name_folded", "description", "price_cents", "quantity", "updated_at")
_NOW: Final = bindparam("now", type_=UtcDateTime)
_ZERO: Final[ColumnElement[Any]] = literal_column("0")


def _written(input_: CTE, old: CTE | None) -> CTE:
    """The products' INSERT, in sku order whatever the input order: two batches sharing skus
    then wait for each other instead of each holding a row the other needs (a deadlock).

    Without old (create), a taken sku is skipped (ON CONFLICT DO NOTHING) and so missing from
    the answer, which the repository turns into SkusTaken; the unit of work then rolls back
    the rest. With old (upsert), it is replaced as PUT does, but unguarded by its holds: the
    use case counts them once the batch is written (batch_use_cases), as on SQLite. old's
    count(*) is an init plan, which reads all of old before the first row is written (read
    later, a row this statement already updated would be skipped). xmax = 0 marks a row
    inserted, not updated.
    """
    new = select(*(input_.c[name] for name in _NEW), _NOW, _NOW, literal_column("1"))
    if old is not None:
        new = new.where(select(func.count()).select_from(old).scalar_subquery() >= _ZERO)
    write = postgresql.insert(products).from_select(
        [*_NEW, "created_at", "updated_at", "version"], new.order_by(input_.c.sku)
    )
    created: ColumnElement[bool] = true()
    if old is None:
        write = write.on_conflict_do_nothing(index_elements=[products.c.sku])
    else:
        replaced: dict[str, Any] = {name: write.excluded[name] for name in _REPLACED}
        replaced["version"] = products.c.version + literal_column("1")
        write = write.on_conflict_do_update(index_elements=[products.c.sku], set_=replaced)
        created = column("xmax") == _ZERO
    return write.returning(*PRODUCT_COLUMNS, created.label("created")).cte("written")


def _batch(*, upsert: bool) -> Select[Any]:
    """A batch in one statement: its products (written), their ledger entries (entries) and
    their change events (changes, inserted in input order, ord, so that their ids follow it;
    each after its product's row is written, as outbox.with_change does).

    An upsert's old locks the taken skus' rows first, in sku order, and reads the quantity
    each replace overwrites, for the "set" entry's delta. A sku another transaction inserted
    after old was read (its insert committed while this one waited on the unique index) is
    updated without its old quantity: raced marks it, and the repository gives the whole
    batch up (WriteContention) rather than write a wrong delta.
    """
    arrays = (bindparam(name, type_=ARRAY(element)) for name, _, element in _ARRAYS)
    unnested = func.unnest(*arrays).table_valued(
        *(column(name, element) for _, name, element in _ARRAYS), with_ordinality="ord"
    )
    input_ = select(*unnested.render_derived(name="t").c).cte("input")
    old = None
    if upsert:
        old = (
            select(products.c.sku, products.c.quantity)
            .join_from(products, input_, products.c.sku == input_.c.sku)
            .order_by(products.c.sku)
            .with_for_update(of=products)
            .cte("old")
        )
    written = _written(input_, old)
    in_input = written.join(input_, written.c.sku == input_.c.sku)
    joined, before = in_input, _ZERO
    delta: ColumnElement[Any] = written.c.quantity
    reason: ColumnElement[str] = literal_column(f"'{INITIAL}'")
    kind: ColumnElement[str] = literal_column(f"'{ChangeType.CREATED}'")
    if old is not None:
        joined = in_input.outerjoin(old, old.c.sku == written.c.sku)
        before = func.coalesce(old.c.quantity, _ZERO)
        delta = written.c.quantity - before
        reason = case((written.c.created, reason), else_=literal_column(f"'{SET}'"))
        kind = case((written.c.created, kind), else_=literal_column(f"'{ChangeType.UPDATED}'"))
    entry = select(input_.c.entry_id, written.c.id, delta, reason, null())
    entry = entry.add_columns(written.c.quantity, written.c.version, written.c.updated_at)
    entries = insert(stock_ledger).from_select(
        [c.name for c in stock_ledger.c],
        entry.select_from(joined).where(written.c.quantity != before),
    )
    change = {
        "type": kind,
        "product_id": written.c.id,
        "version": written.c.version,
        "occurred_at": written.c.updated_at,
        **{name: written.c[name] for name in PRODUCT_STATE},
    }
    changes = insert(product_changes).from_select(
        list(change), select(*change.values()).select_from(in_input).order_by(input_.c.ord)
    )
    answer = select(*written.c, input_.c.ord)
    if old is not None:
        raced = and_(not_(written.c.created), old.c.sku.is_(None))
        answer = answer.add_columns(raced.label("raced"))
    return (
        answer.select_from(joined)
        .order_by(input_.c.ord)
        .add_cte(entries.cte("entries"), changes.cte("changes"))
    )


_BATCH_CREATE: Final = compiled(_batch(upsert=False))
_BATCH_UPSERT: Final = compiled(_batch(upsert=True))


class _Session(Protocol):
    async def fetch_one(self, sql: str, params: dict[str, Any], *, writes: bool) -> Row | None: ...

    async def fetch_all(self, sql: str, params: dict[str, Any]) -> list[Row]: ...

    async def execute(self, sql: str, params: dict[str, Any]) -> int: ...

    def changed(self) -> None: ...


class PostgresStockMixin:
    """The stock half of PostgresProductRepository."""

    _session: _Session

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
            "entry_id": entry_id,
            "reason": change.reason,
            "reference": change.reference,
        }
        sql = _ADJUST
        if expected_version is not None:
            sql = _ADJUST_AT_VERSION
            params["expected_version"] = expected_version
        row = await self._session.fetch_one(sql, params, writes=True)
        if row is None:
            return None
        self._session.changed()
        return entry_of(row)

    async def write_batch(
        self, candidates: Sequence[Product], entry_ids: Sequence[UUID], *, upsert: bool
    ) -> tuple[BatchItem, ...]:
        params = {
            "ids": [c.id for c in candidates],
            "skus": [c.sku for c in candidates],
            "names": [c.name for c in candidates],
            "names_folded": [search_fold(c.name) for c in candidates],
            "descriptions": [c.description for c in candidates],
            "prices": [cents(c.price) for c in candidates],
            "quantities": [c.quantity for c in candidates],
            "entry_ids": list(entry_ids),
            "now": candidates[0].updated_at,
        }
        rows = await self._session.fetch_all(_BATCH_UPSERT if upsert else _BATCH_CREATE, params)
        raced = [row[0] for row in rows if upsert and row[11]]
        if raced:
            raise WriteContention(raced[0])
        if len(rows) < len(candidates):
            written = {row[1] for row in rows}
            taken = [i for i, c in enumerate(candidates) if c.sku not in written]
            raise SkusTaken(taken, "these skus already exist")
        self._session.changed()
        return tuple(BatchItem(row[9], product_of(row)) for row in rows)

    async def stock_entry(self, entry_id: UUID) -> StockEntry | None:
        row = await self._session.fetch_one(_GET_ENTRY, {"entry_id": entry_id}, writes=False)
        return None if row is None else entry_of(row)

    async def stock_entries(self, product_id: UUID, query: LedgerQuery) -> LedgerPage:
        sql = _LEDGER_PAGE if query.after is None else _LEDGER_PAGE_AFTER
        rows = await self._session.fetch_all(sql, ledger_parameters(product_id, query))
        return ledger_page(rows, query)
