"""Stock and batch writes on psycopg: one statement each, its ledger entries in CTEs."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID

from cme_adapters.postgres.compiled import compiled
from cme_adapters.sql import stock_statements
from cme_adapters.sql.codecs import cents, entry_of, ledger_page, ledger_parameters, product_of
from cme_domain.batch import BatchItem
from cme_domain.errors import SkusTaken, WriteContention
from cme_domain.listing import search_fold
from cme_domain.ports import LedgerPage, LedgerQuery
from cme_domain.product import Product
from cme_domain.stock import StockChange, StockEntry

Row = tuple[Any, ...]

_ADJUST: Final = compiled(stock_statements.ADJUST_WITH_ENTRY)
_ADJUST_AT_VERSION: Final = compiled(stock_statements.ADJUST_AT_VERSION_WITH_ENTRY)
_GET_ENTRY: Final = compiled(stock_statements.GET_ENTRY)
_LEDGER_PAGE: Final = compiled(stock_statements.LEDGER_PAGE)
_LEDGER_PAGE_AFTER: Final = compiled(stock_statements.LEDGER_PAGE_AFTER)

# Both batch statements take the batch as arrays, one element per product (input, ord
# being the input order), and write the products (written), their ledger entries (entries)
# and their change events (changes, inserted in input order so their ids follow it; each
# after its product's row is written, as sql/outbox.py's with_change does) in one statement.
#
# Rows are locked and inserted in sku order, whatever the input order: two batches sharing
# skus then wait for each other instead of each holding a row the other needs (a deadlock).
#
# Create mode: every sku must be free. A taken one is skipped (ON CONFLICT DO NOTHING) and
# so missing from the answer, which the repository turns into SkusTaken; the unit of work
# then rolls back the rest.
BATCH_CREATE: Final = """
WITH input AS (
  SELECT * FROM unnest(
    %(ids)s::uuid[], %(skus)s::text[], %(names)s::text[], %(names_folded)s::text[],
    %(descriptions)s::text[], %(prices)s::bigint[], %(quantities)s::integer[],
    %(entry_ids)s::uuid[]
  ) WITH ORDINALITY AS
    t(id, sku, name, name_folded, description, price_cents, quantity, entry_id, ord)
),
written AS (
  INSERT INTO products
    (id, sku, name, name_folded, description, price_cents, quantity, created_at, updated_at,
     version)
  SELECT id, sku, name, name_folded, description, price_cents, quantity, %(now)s, %(now)s, 1
  FROM input ORDER BY sku
  ON CONFLICT (sku) DO NOTHING
  RETURNING
    id, sku, name, description, price_cents, quantity, created_at, updated_at, version,
    true AS created
),
entries AS (
  INSERT INTO stock_ledger
    (id, product_id, delta, reason, reference, quantity_after, version_after, created_at)
  SELECT input.entry_id, w.id, w.quantity, 'initial', NULL, w.quantity, w.version,
         w.updated_at
  FROM written w JOIN input USING (sku)
  WHERE w.quantity <> 0
),
changes AS (
  INSERT INTO product_changes
    (type, product_id, version, occurred_at,
     sku, name, description, price_cents, quantity, created_at, updated_at)
  SELECT 'product.created', w.id, w.version, w.updated_at,
         w.sku, w.name, w.description, w.price_cents, w.quantity, w.created_at, w.updated_at
  FROM written w JOIN input USING (sku) ORDER BY input.ord
)
SELECT w.*, input.ord FROM written w JOIN input USING (sku) ORDER BY input.ord
"""
# Upsert mode: a taken sku's product is replaced as PUT does. old locks those rows first and
# reads the quantity each replace overwrites, for the "set" entry's delta: the count(*) is an
# init plan, which reads all of old before the first row is written (read later, a row this
# statement already updated would be skipped). xmax = 0 marks a row inserted, not updated.
# A sku another transaction inserted after old was read (its insert committed while this one
# waited on the unique index) is updated without its old quantity: raced marks it, and the
# repository gives the whole batch up (WriteContention) rather than write a wrong delta.
BATCH_UPSERT: Final = """
WITH input AS (
  SELECT * FROM unnest(
    %(ids)s::uuid[], %(skus)s::text[], %(names)s::text[], %(names_folded)s::text[],
    %(descriptions)s::text[], %(prices)s::bigint[], %(quantities)s::integer[],
    %(entry_ids)s::uuid[]
  ) WITH ORDINALITY AS
    t(id, sku, name, name_folded, description, price_cents, quantity, entry_id, ord)
),
old AS (
  SELECT p.sku, p.quantity FROM products p JOIN input USING (sku) ORDER BY sku FOR UPDATE OF p
),
written AS (
  INSERT INTO products
    (id, sku, name, name_folded, description, price_cents, quantity, created_at, updated_at,
     version)
  SELECT id, sku, name, name_folded, description, price_cents, quantity, %(now)s, %(now)s, 1
  FROM input WHERE (SELECT count(*) FROM old) >= 0 ORDER BY sku
  ON CONFLICT (sku) DO UPDATE SET
    name = excluded.name, name_folded = excluded.name_folded,
    description = excluded.description,
    price_cents = excluded.price_cents, quantity = excluded.quantity,
    updated_at = excluded.updated_at, version = products.version + 1
  RETURNING
    id, sku, name, description, price_cents, quantity, created_at, updated_at, version,
    (xmax = 0) AS created
),
entries AS (
  INSERT INTO stock_ledger
    (id, product_id, delta, reason, reference, quantity_after, version_after, created_at)
  SELECT input.entry_id, w.id, w.quantity - coalesce(old.quantity, 0),
         CASE WHEN w.created THEN 'initial' ELSE 'set' END, NULL, w.quantity, w.version,
         w.updated_at
  FROM written w JOIN input USING (sku) LEFT JOIN old USING (sku)
  WHERE w.quantity <> coalesce(old.quantity, 0)
),
changes AS (
  INSERT INTO product_changes
    (type, product_id, version, occurred_at,
     sku, name, description, price_cents, quantity, created_at, updated_at)
  SELECT CASE WHEN w.created THEN 'product.created' ELSE 'product.updated' END,
         w.id, w.version, w.updated_at,
         w.sku, w.name, w.description, w.price_cents, w.quantity, w.created_at, w.updated_at
  FROM written w JOIN input USING (sku) ORDER BY input.ord
)
SELECT w.*, input.ord, (NOT w.created AND old.sku IS NULL) AS raced
FROM written w JOIN input USING (sku) LEFT JOIN old USING (sku) ORDER BY input.ord
"""


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
        rows = await self._session.fetch_all(BATCH_UPSERT if upsert else BATCH_CREATE, params)
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
