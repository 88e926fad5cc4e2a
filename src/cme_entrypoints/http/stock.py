"""The stock routes: adjustments and the ledger of a product, and batch writes."""

from collections.abc import Callable
from typing import Any, Final

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cme_domain.batch import Batch, BatchItem
from cme_domain.batch_use_cases import WriteBatch
from cme_domain.changes import ChangeType
from cme_domain.errors import InsufficientStock, StockOverflow
from cme_domain.listing import PAGE_DEFAULT, SortOrder
from cme_domain.ports import LedgerQuery
from cme_domain.stock import StockChange, StockEntry
from cme_domain.stock_use_cases import AdjustStock, GetStockEntry, ListStockEntries
from cme_entrypoints.http.auth import RequestAuthenticator
from cme_entrypoints.http.body import read_json_object
from cme_entrypoints.http.cursor import LEDGER_SORT, BadCursor, CursorCodec
from cme_entrypoints.http.problems import Problem
from cme_entrypoints.http.products import (
    JSON,
    by_method,
    idempotency_key,
    if_match,
    page_limit,
    product_id_of,
)
from cme_entrypoints.http.representation import json_response, product_json, version_etag
from cme_entrypoints.http.routing import ENTRY_PATH, LEDGER_PATH

# 1000 products with 4000-character ASCII descriptions fit; the rest of the API keeps its
# 64 KiB limit.
BATCH_BODY_BYTES: Final = 4 * 1024 * 1024
# Ledger cursors are signed as product-page cursors are, over version_after, latest first.
_LEDGER_SORT: Final = (LEDGER_SORT, SortOrder.DESC)


def entry_json(entry: StockEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "product_id": entry.product_id,
        "delta": entry.delta,
        "reason": entry.reason,
        "reference": entry.reference,
        "quantity_after": entry.quantity_after,
        "version_after": entry.version_after,
        "created_at": entry.created_at,
    }


def _item_json(item: BatchItem) -> dict[str, Any]:
    return {"status": 201 if item.created else 200, "product": product_json(item.product)}


@attrs.frozen
class StockRoutes:
    authenticate: RequestAuthenticator
    cursors: CursorCodec
    adjust_stock: AdjustStock
    list_stock_entries: ListStockEntries
    get_stock_entry: GetStockEntry
    write_batch: WriteBatch
    # The metrics of stock: adjustments by outcome, and batch products created or replaced.
    stock_adjusted: Callable[[str], None]
    batch_written: Callable[[int, int], None]
    # Change events written, by type (as ProductRoutes.changed counts them).
    changed: Callable[[str, int], None]

    def routes(self) -> list[Route]:
        return [
            Route("/products/batch", self.batch, methods=["POST"]),
            by_method(LEDGER_PATH, GET=self.ledger, POST=self.adjust),
            by_method(ENTRY_PATH, GET=self.entry),
        ]

    async def entry(self, request: Request) -> Response:
        product_id = product_id_of(request)
        entry_id = request.path_params["entry_id"]
        return json_response(entry_json(await self.get_stock_entry(product_id, entry_id)))

    async def adjust(self, request: Request) -> Response:
        principal = self.authenticate(request)
        product_id = product_id_of(request)
        change = StockChange.parse(await read_json_object(request, JSON))
        key = idempotency_key(request)
        try:
            entry, new = await self.adjust_stock(
                principal, product_id, change, if_match(request), key
            )
        except InsufficientStock:
            self.stock_adjusted("insufficient_stock")
            raise
        except StockOverflow:
            self.stock_adjusted("overflow")
            raise
        if new:
            self.stock_adjusted("applied")
            self.changed(ChangeType.STOCK_ADJUSTED, 1)
        headers = {
            "Location": f"/products/{product_id}/stock-adjustments/{entry.id}",
            "ETag": version_etag(entry.version_after),
        }
        if not new:
            headers["Idempotent-Replayed"] = "true"
        return json_response(entry_json(entry), 201, headers)

    async def ledger(self, request: Request) -> Response:
        # The query is judged before the id, as on /products: a bad one is 422 or 400 whatever
        # product it names.
        await self.cursors.ready()
        query = LedgerQuery(limit=self._limit(request))
        cursor = request.query_params.get("cursor")
        if cursor is not None:
            try:
                after = self.cursors.decode(cursor, *_LEDGER_SORT)
            except BadCursor as exc:
                raise Problem(400, str(exc), slug="bad-cursor") from None
            query = attrs.evolve(query, after=after)
        product_id = product_id_of(request)
        page = await self.list_stock_entries(product_id, query)
        next_cursor = None
        if page.next is not None:
            next_cursor = self.cursors.encode(page.next, *_LEDGER_SORT)
        return json_response(
            {"items": [entry_json(e) for e in page.items], "next_cursor": next_cursor}
        )

    async def batch(self, request: Request) -> Response:
        principal = self.authenticate(request)
        batch = Batch.parse(await read_json_object(request, JSON, limit=BATCH_BODY_BYTES))
        items, new = await self.write_batch(principal, batch, idempotency_key(request))
        if new:
            created = sum(item.created for item in items)
            self.batch_written(created, len(items) - created)
            self.changed(ChangeType.CREATED, created)
            self.changed(ChangeType.UPDATED, len(items) - created)
        headers = {} if new else {"Idempotent-Replayed": "true"}
        return json_response({"items": [_item_json(i) for i in items]}, 200, headers)

    @staticmethod
    def _limit(request: Request) -> int:
        raw = request.query_params.get("limit")
        if raw is None:
            return PAGE_DEFAULT
        try:
            return page_limit(raw)
        except ValueError as exc:
            raise Problem(
                422,
                "the query is not valid",
                slug="validation-error",
                errors=[{"field": "limit", "message": str(exc)}],
            ) from None
