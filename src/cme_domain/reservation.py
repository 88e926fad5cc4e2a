"""Reservations: stock held for a cart while it checks out, until confirmed, released or expired."""

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import attrs

from cme_domain.errors import FieldErrors
from cme_domain.product import QUANTITY_MAX, bounded_integer
from cme_domain.stock import reference

LINES_MAX: Final = 100
TTL_MAX_SECONDS: Final = 86400
TTL_DEFAULT_SECONDS: Final = 900
RESERVATION_FIELDS: Final = ("lines", "ttl_seconds", "reference")
LINE_FIELDS: Final = ("product_id", "quantity")
EXTENSION_FIELDS: Final = ("ttl_seconds",)


class ReservationStatus(enum.StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    # Stored by the sweeper, which tidies expired holds; but a held reservation is expired
    # from its expires_at on, whether or not the sweeper has been by (Reservation.status).
    EXPIRED = "expired"


@attrs.frozen
class ReservationLine:
    product_id: UUID
    quantity: int


@attrs.frozen
class ReservationRequest:
    """A cart to hold; constructed only through `parse`, so always valid."""

    lines: tuple[ReservationLine, ...]
    ttl: timedelta
    reference: str | None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "ReservationRequest":
        """Validate the whole request, naming each bad field as lines[i].field."""
        errors = FieldErrors()
        errors.unknown(raw, RESERVATION_FIELDS)
        ttl = timedelta(seconds=TTL_DEFAULT_SECONDS)
        if "ttl_seconds" in raw:
            try:
                ttl = ttl_of(raw["ttl_seconds"])
            except ValueError as exc:
                errors.add("ttl_seconds", str(exc))
        ref = None
        try:
            ref = reference(raw.get("reference"))
        except ValueError as exc:
            errors.add("reference", str(exc))
        lines = _lines(raw.get("lines"), errors)
        errors.raise_any()
        return cls(lines, ttl, ref)


def ttl_of(value: object) -> timedelta:
    """A time to live in whole seconds, 1..TTL_MAX_SECONDS."""
    return timedelta(seconds=bounded_integer(value, 1, TTL_MAX_SECONDS))


def parse_extension(raw: Mapping[str, Any]) -> timedelta:
    """The body of an extend: {"ttl_seconds": N}, counted from now."""
    errors = FieldErrors()
    errors.unknown(raw, EXTENSION_FIELDS)
    ttl = timedelta(0)
    if "ttl_seconds" not in raw:
        errors.add("ttl_seconds", "is required")
    else:
        try:
            ttl = ttl_of(raw["ttl_seconds"])
        except ValueError as exc:
            errors.add("ttl_seconds", str(exc))
    errors.raise_any()
    return ttl


def _lines(raw: object, errors: FieldErrors) -> tuple[ReservationLine, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= LINES_MAX:
        errors.add("lines", f"must be an array of 1 to {LINES_MAX} lines")
        return ()
    lines: list[ReservationLine] = []
    first: dict[UUID, int] = {}
    for index, item in enumerate(raw):
        where = f"lines[{index}]"
        if not isinstance(item, dict):
            errors.add(where, "must be an object")
            continue
        errors.unknown(item, LINE_FIELDS, where)
        product_id = quantity = None
        try:
            product_id = _product_id(item.get("product_id"))
        except ValueError as exc:
            errors.add(f"{where}.product_id", str(exc))
        try:
            quantity = _quantity(item.get("quantity"))
        except ValueError as exc:
            errors.add(f"{where}.quantity", str(exc))
        if product_id is None or quantity is None:
            continue
        if product_id in first:
            errors.add(f"{where}.product_id", f"repeats lines[{first[product_id]}].product_id")
            continue
        first[product_id] = index
        lines.append(ReservationLine(product_id, quantity))
    return tuple(lines)


def _product_id(value: object) -> UUID:
    if not isinstance(value, str):
        raise ValueError("is required, a UUID string")
    try:
        return UUID(value)
    except ValueError:
        raise ValueError("must be a UUID") from None


def _quantity(value: object) -> int:
    if value is None:
        raise ValueError("is required")
    return bounded_integer(value, 1, QUANTITY_MAX)


@attrs.frozen
class Reservation:
    id: UUID
    # What was last written; status(now) is what the reservation is.
    state: ReservationStatus
    lines: tuple[ReservationLine, ...]
    reference: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime

    @classmethod
    def hold(cls, id: UUID, request: ReservationRequest, now: datetime) -> "Reservation":
        return cls(
            id,
            ReservationStatus.HELD,
            request.lines,
            request.reference,
            now,
            now,
            now + request.ttl,
        )

    def status(self, now: datetime) -> ReservationStatus:
        """From expires_at on, a hold no longer counts: it is expired whether or not anything
        has tidied it since."""
        if self.state is ReservationStatus.HELD and now >= self.expires_at:
            return ReservationStatus.EXPIRED
        return self.state

    def moved_to(self, state: ReservationStatus, now: datetime) -> "Reservation":
        return attrs.evolve(self, state=state, updated_at=now)

    def extended(self, ttl: timedelta, now: datetime) -> "Reservation":
        return attrs.evolve(self, updated_at=now, expires_at=now + ttl)

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)
