"""The Product entity and the invariants every product satisfies."""

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import attrs

from cme_domain.errors import FieldErrors

SKU_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
NAME_MAX: Final = 200
DESCRIPTION_MAX: Final = 4000
PRICE_LIMIT: Final = Decimal(10) ** 10
QUANTITY_MAX: Final = 2**31 - 1
# A product's version is a 32-bit integer in every store (INTEGER on PostgreSQL).
VERSION_MAX: Final = 2**31 - 1
CENT: Final = Decimal("0.01")
# Characters that show nothing: a name of only these (and whitespace) is blank. Controls,
# format characters (Cf: U+200B zero-width space, U+2060 word joiner, U+FEFF, soft hyphen,
# bidi marks) and the Hangul and Braille fillers, which are letters or symbols drawn empty.
_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf"})
_FILLERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# Prices sent as text: no sign, no exponent, no leading zeros, at most 2 decimals, below 10^10.
PRICE_TEXT: Final = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?")

EDITABLE_FIELDS: Final = ("sku", "name", "description", "price", "quantity")


@attrs.frozen
class ProductSpec:
    """The fields a client chooses; constructed only through `parse`, so always valid."""

    sku: str
    name: str
    description: str | None
    price: Decimal
    quantity: int

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "ProductSpec":
        """Validate raw values (as decoded from JSON) and report every bad field at once."""
        errors = FieldErrors()
        errors.unknown(raw, EDITABLE_FIELDS)
        values: dict[str, Any] = {}
        for name, check in _CHECKS.items():
            if name not in raw:
                if name == "description":
                    values[name] = None
                    continue
                errors.add(name, "is required")
                continue
            try:
                values[name] = check(raw[name])
            except ValueError as exc:
                errors.add(name, str(exc))
        errors.raise_any()
        return cls(**values)

    @staticmethod
    def check_patch(patch: Mapping[str, Any]) -> None:
        """Reject a merge patch whose own fields are invalid, before any product is read."""
        errors = FieldErrors()
        errors.unknown(patch, EDITABLE_FIELDS)
        for name, check in _CHECKS.items():
            if name not in patch:
                continue
            if patch[name] is None and name != "description":
                errors.add(name, "is required and cannot be removed")
                continue
            try:
                check(patch[name])
            except ValueError as exc:
                errors.add(name, str(exc))
        errors.raise_any()

    def merged(self, patch: Mapping[str, Any]) -> "ProductSpec":
        """Apply a JSON merge patch (RFC 7396): null removes a field, anything else replaces it."""
        ProductSpec.check_patch(patch)
        raw: dict[str, Any] = attrs.asdict(self)
        raw.update(patch)
        return ProductSpec.parse(raw)


@attrs.frozen
class Product:
    """A catalogue entry. Server-owned fields (id, timestamps, version) never come from clients."""

    id: UUID
    sku: str
    name: str
    description: str | None
    price: Decimal
    quantity: int
    created_at: datetime
    updated_at: datetime
    version: int
    # Units that live reservations hold: the store counts them as it reads the product.
    held: int = 0

    @property
    def available(self) -> int:
        """What a sale or a new reservation can take: the quantity on hand less the holds."""
        return self.quantity - self.held

    @property
    def spec(self) -> ProductSpec:
        return ProductSpec(self.sku, self.name, self.description, self.price, self.quantity)

    @classmethod
    def new(cls, id: UUID, spec: ProductSpec, now: datetime) -> "Product":
        return cls(
            id, **attrs.asdict(spec, recurse=False), created_at=now, updated_at=now, version=1
        )

    def revised(self, spec: ProductSpec, now: datetime) -> "Product":
        return attrs.evolve(self, **attrs.asdict(spec), updated_at=now, version=self.version + 1)


def _sku(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not SKU_PATTERN.fullmatch(value):
        raise ValueError("must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
    return value


def _name(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    _storable(value)
    if len(value) > NAME_MAX:
        raise ValueError(f"must be at most {NAME_MAX} characters")
    if _is_blank(value):
        raise ValueError("must not be blank (whitespace and invisible characters do not count)")
    return value


def _description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string or null")
    _storable(value)
    if len(value) > DESCRIPTION_MAX:
        raise ValueError(f"must be at most {DESCRIPTION_MAX} characters")
    return value


def _storable(text: str) -> None:
    # No text store we target keeps U+0000 (PostgreSQL refuses it), and a lone surrogate (JSON
    # allows "\ud800") is not Unicode text at all: no UTF-8 encoder writes it.
    if "\x00" in text:
        raise ValueError("must not contain the NUL character (U+0000)")
    if _LONE_SURROGATE.search(text):
        raise ValueError("must not contain a lone surrogate (U+D800 to U+DFFF)")


def _is_blank(text: str) -> bool:
    """True when nothing in the text would show: only whitespace, format characters or fillers."""
    return all(
        ch.isspace() or ch in _FILLERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES
        for ch in text
    )


def _price(value: object) -> Decimal:
    # bool is an int subclass; a float has already lost exactness, so neither is accepted.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("must be a decimal number, as a JSON string or number")
    if isinstance(value, str):
        if value.startswith("-"):
            raise ValueError("must not be negative")
        if not PRICE_TEXT.fullmatch(value):
            raise ValueError("must be written like 19.99: digits, at most 2 decimals, below 10^10")
        return Decimal(value).quantize(CENT)
    price = Decimal(value)
    if not price.is_finite():
        raise ValueError("must be a finite decimal number")
    if price < 0:
        raise ValueError("must not be negative")
    if price >= PRICE_LIMIT:
        raise ValueError("must be below 10000000000")
    if price != price.quantize(CENT):
        raise ValueError("must have at most 2 decimal places")
    return price.quantize(CENT).copy_abs()  # copy_abs turns -0 into 0.00


def _quantity(value: object) -> int:
    return bounded_integer(value, 0, QUANTITY_MAX)


def bounded_integer(value: object, low: int, high: int) -> int:
    """A JSON integer within low..high. JSON Schema counts 3.0 as an integer, and so do we;
    3.5, "3" and true are not.

    The magnitude is checked before int(): int(Decimal("1E+999999999")) builds a billion-digit
    integer, seconds of CPU on the event loop for one small request body.
    """
    out_of_range = f"must be between {low} and {high}"
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        if value.adjusted() > len(str(max(abs(low), high))):
            raise ValueError(out_of_range)
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    if not low <= value <= high:
        raise ValueError(out_of_range)
    return value


_CHECKS: Final[dict[str, Callable[[object], Any]]] = {
    "sku": _sku,
    "name": _name,
    "description": _description,
    "price": _price,
    "quantity": _quantity,
}
