"""Stock: the ledger entry every change of a product's quantity writes, and adjustments."""

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import attrs

from cme_domain.errors import FieldErrors
from cme_domain.product import QUANTITY_MAX, Product, bounded_integer

REASON_PATTERN: Final = re.compile(r"[a-z0-9_-]{1,64}")
REFERENCE_MAX: Final = 200
# No adjustment larger than the whole range of a quantity can ever apply.
DELTA_LIMIT: Final = QUANTITY_MAX
INITIAL: Final = "initial"
SET: Final = "set"
RESERVATION: Final = "reservation"
# The ledger's own reasons: an adjustment sent with one would pass for a create, a PUT or a
# confirmed reservation.
SYSTEM_REASONS: Final = frozenset((INITIAL, SET, RESERVATION))
ADJUSTMENT_FIELDS: Final = ("delta", "reason", "reference")


@attrs.frozen
class StockChange:
    """A requested adjustment: constructed only through `parse`, so always valid."""

    delta: int
    reason: str
    reference: str | None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "StockChange":
        errors = FieldErrors()
        errors.unknown(raw, ADJUSTMENT_FIELDS)
        values: dict[str, Any] = {"reference": None}
        for name, check in (("delta", _delta), ("reason", _reason), ("reference", reference)):
            if name not in raw:
                if name != "reference":
                    errors.add(name, "is required")
                continue
            try:
                values[name] = check(raw[name])
            except ValueError as exc:
                errors.add(name, str(exc))
        errors.raise_any()
        return cls(**values)


@attrs.frozen
class StockEntry:
    """One line of a product's ledger: its quantity is always the sum of its entries' deltas."""

    id: UUID
    product_id: UUID
    delta: int
    reason: str
    reference: str | None
    quantity_after: int
    version_after: int
    created_at: datetime

    @classmethod
    def initial(cls, id: UUID, product: Product) -> "StockEntry | None":
        """A new product's entry: its starting quantity, or none when it starts at 0."""
        if product.quantity == 0:
            return None
        return cls.of(id, product, product.quantity, INITIAL, None)

    @classmethod
    def setting(cls, id: UUID, product: Product, old_quantity: int) -> "StockEntry | None":
        """A PUT or PATCH's entry: the change it made, or none when the quantity stayed."""
        if product.quantity == old_quantity:
            return None
        return cls.of(id, product, product.quantity - old_quantity, SET, None)

    @classmethod
    def of(
        cls, id: UUID, product: Product, delta: int, reason: str, reference: str | None
    ) -> "StockEntry":
        """The entry for a product as the change left it."""
        return cls(
            id, product.id, delta, reason, reference, product.quantity, product.version,
            product.updated_at,
        )  # fmt: skip


def _delta(value: object) -> int:
    delta = bounded_integer(value, -DELTA_LIMIT, DELTA_LIMIT)
    if delta == 0:
        raise ValueError("must not be 0")
    return delta


def _reason(value: object) -> str:
    if not isinstance(value, str) or not REASON_PATTERN.fullmatch(value):
        raise ValueError("must be 1-64 characters of a-z, 0-9, '_' or '-'")
    if value in SYSTEM_REASONS:
        raise ValueError(
            f"'{value}' is the service's own reason, for creates, PUT/PATCH and reservations"
        )
    return value


def reference(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string or null")
    if len(value) > REFERENCE_MAX or not value.isprintable():
        raise ValueError(f"must be at most {REFERENCE_MAX} printable characters")
    return value
