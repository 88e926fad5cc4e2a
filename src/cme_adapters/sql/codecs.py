"""Products, reservations and webhooks as the shared statements bind and return them, for both
databases: money as integer cents, the name beside its folded form, a reservation's lines in
their request order, a webhook's event types comma-joined."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs

from cme_domain.changes import ChangeType
from cme_domain.listing import Keyset, Page, ProductQuery, keyset_of, search_fold
from cme_domain.ports import LedgerPage, LedgerQuery
from cme_domain.product import Product, ProductSpec
from cme_domain.reservation import Reservation, ReservationLine, ReservationStatus
from cme_domain.stock import StockEntry
from cme_domain.webhook_ports import Delivery
from cme_domain.webhooks import Webhook, WebhookStatus


def cents(price: Decimal) -> int:
    return int(price.scaleb(2))


def price_of(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def product_of(row: Sequence[Any]) -> Product:
    """The Product in a row that starts with schema.PRODUCT_COLUMNS."""
    id_, sku, name, description, price_cents, quantity, created_at, updated_at, version = row[:9]
    price = price_of(price_cents)
    return Product(id_, sku, name, description, price, quantity, created_at, updated_at, version)


def may_be_held(rows: Sequence[Sequence[Any]]) -> list[UUID]:
    """The products, in rows of statements.READ_COLUMNS, that a live hold may be on."""
    return [row[0] for row in rows if row[9]]


def held_product_of(row: Sequence[Any], held: Mapping[UUID, int]) -> Product:
    """The Product in a row of statements.READ_COLUMNS, with its holds from holds.HELD_BY_ID
    (a product absent from it holds nothing)."""
    product = product_of(row)
    units = held.get(product.id, 0)
    return attrs.evolve(product, held=units) if units else product


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


def product_page(
    rows: Sequence[Sequence[Any]], query: ProductQuery, held: Mapping[UUID, int]
) -> Page:
    """The page in the rows of statements.page_statement(query): one row more than the page
    when there is a next one."""
    items = [held_product_of(row, held) for row in rows[: query.limit]]
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


def reservation_of(rows: Sequence[Sequence[Any]]) -> Reservation | None:
    """The reservation in the rows of reservation_statements.GET: one per line, in order."""
    if not rows:
        return None
    id_, state, reference, created_at, updated_at, expires_at = rows[0][:6]
    lines = tuple(ReservationLine(row[6], row[7]) for row in rows)
    status = ReservationStatus(state)
    return Reservation(id_, status, lines, reference, created_at, updated_at, expires_at)


def reservation_values(reservation: Reservation) -> dict[str, Any]:
    """What reservation_statements.INSERT binds for the reservation."""
    return {
        "id": reservation.id,
        "state": reservation.state.value,
        "reference": reservation.reference,
        "created_at": reservation.created_at,
        "updated_at": reservation.updated_at,
        "expires_at": reservation.expires_at,
    }


def saved_values(reservation: Reservation) -> dict[str, Any]:
    """What reservation_statements.SAVE_HELD and SAVE_ENDED bind (UPDATE, UPDATE_LINES and
    HOLD_PRODUCTS a part each): held_until is the lines', null once it no longer holds."""
    held = reservation.state is ReservationStatus.HELD
    return {
        "reservation": reservation.id,
        "state": reservation.state.value,
        "updated_at": reservation.updated_at,
        "expires_at": reservation.expires_at,
        "held_until": reservation.expires_at if held else None,
    }


def line_values(reservation: Reservation) -> list[dict[str, Any]]:
    """A row of reservation_statements.INSERT_LINE per line, numbered from 1 as PostgreSQL's
    WITH ORDINALITY numbers them (reservation_statements.ADD)."""
    return [
        {
            "reservation_id": reservation.id,
            "product_id": line.product_id,
            "ordinal": ordinal,
            "quantity": line.quantity,
            "held_until": reservation.expires_at,
        }
        for ordinal, line in enumerate(reservation.lines, start=1)
    ]


def webhook_of(row: Sequence[Any]) -> Webhook:
    """The Webhook in a row of every column of schema.webhooks, in order."""
    id_, url, events, description, status, secret, created_at, updated_at = row[:8]
    position, attempts, failing_since, next_attempt_at = row[8:12]
    kinds = None if events is None else tuple(ChangeType(e) for e in events.split(","))
    return Webhook(
        id_,
        url,
        kinds,
        description,
        WebhookStatus(status),
        secret,
        created_at,
        updated_at,
        int(position),
        int(attempts),
        failing_since,
        next_attempt_at,
    )


def webhook_settings(webhook: Webhook) -> dict[str, Any]:
    """What the fields a PATCH may change bind as (webhook_statements.SETTINGS)."""
    return {
        "url": webhook.url,
        "events": None if webhook.events is None else ",".join(webhook.events),
        "description": webhook.description,
        "status": webhook.status.value,
        "secret": webhook.secret,
        "updated_at": webhook.updated_at,
    }


def webhook_values(webhook: Webhook) -> dict[str, Any]:
    """What webhook_statements.INSERT binds."""
    return {
        "id": webhook.id,
        **webhook_settings(webhook),
        "created_at": webhook.created_at,
        "position": webhook.position,
        "attempts": webhook.attempts,
        "failing_since": webhook.failing_since,
        "next_attempt_at": webhook.next_attempt_at,
        "lease_owner": None,
        "lease_until": None,
    }


def failure_values(webhook: Webhook, owner: str) -> dict[str, Any]:
    """What webhook_statements.FAILED binds: the failures counted, and whether they disable."""
    return {
        "hook": webhook.id,
        "owner": owner,
        "new_attempts": webhook.attempts,
        "new_failing_since": webhook.failing_since,
        "new_next_attempt_at": webhook.next_attempt_at,
        "disable": webhook.status is WebhookStatus.DISABLED,
    }


def delivery_values(delivery: Delivery) -> dict[str, Any]:
    """What webhook_statements.RECORD binds."""
    return {
        "hook": delivery.webhook_id,
        "event": delivery.sequence,
        "message": delivery.message_id,
        "at": delivery.attempted_at,
        "code": delivery.status_code,
        "failure": None if delivery.error is None else delivery.error[:300],
        "micros": round(delivery.seconds * 1_000_000),
    }


def delivery_of(row: Sequence[Any]) -> Delivery:
    """The Delivery in a row of webhook_statements.DELIVERIES."""
    webhook_id, sequence, message, at, code, error, micros = row
    return Delivery(webhook_id, int(sequence), message, at, code, error, micros / 1_000_000)
