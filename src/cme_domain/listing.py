"""How a client asks for a page of products: filters, sort order and the keyset to resume from."""

import enum
from datetime import datetime
from decimal import Decimal
from typing import Final
from uuid import UUID

import attrs

from cme_domain.product import Product

PAGE_MIN: Final = 1
PAGE_MAX: Final = 100
PAGE_DEFAULT: Final = 20
# `q` matches case-insensitively in ASCII only: A-Z equal a-z, every other character only
# itself. It is the one folding every store can do alike, whatever the database collation.
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_fold(text: str) -> str:
    """The text with A-Z lowered and everything else (É, ß, İ) left as it is."""
    return text.translate(_ASCII_LOWER)


class SortField(enum.StrEnum):
    CREATED_AT = "created_at"
    NAME = "name"
    PRICE = "price"


class SortOrder(enum.StrEnum):
    ASC = "asc"
    DESC = "desc"


# int: a ledger entry's version_after, the order its entries were applied in.
SortValue = datetime | str | Decimal | int


@attrs.frozen
class Keyset:
    """The position after the last row of a page: its sort value, then its id as the tiebreaker."""

    value: SortValue
    id: UUID


@attrs.frozen
class ProductQuery:
    limit: int = PAGE_DEFAULT
    sort: SortField = SortField.CREATED_AT
    order: SortOrder = SortOrder.ASC
    after: Keyset | None = None
    sku: str | None = None
    name_contains: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None

    def matches(self, product: Product) -> bool:
        """The filter, stated once for adapters that filter in Python."""
        return (
            (self.sku is None or product.sku == self.sku)
            and (
                self.name_contains is None
                or ascii_fold(self.name_contains) in ascii_fold(product.name)
            )
            and (self.min_price is None or product.price >= self.min_price)
            and (self.max_price is None or product.price <= self.max_price)
        )


def sort_value(product: Product, field: SortField) -> SortValue:
    value: SortValue = getattr(product, field.value)
    return value


def keyset_of(product: Product, field: SortField) -> Keyset:
    return Keyset(sort_value(product, field), product.id)


@attrs.frozen
class Page:
    items: tuple[Product, ...]
    next: Keyset | None
