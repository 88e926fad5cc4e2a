"""How a client asks for a page of products: filters, sort order and the keyset to resume from."""

import enum
import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Final
from uuid import UUID

import attrs

from cme_domain.product import Product

PAGE_MIN: Final = 1
PAGE_MAX: Final = 100
PAGE_DEFAULT: Final = 20


def search_fold(text: str) -> str:
    """The text as `q` compares it: NFKC-normalised and fully case-folded, then normalised
    again (casefolding can undo normalisation), so that "STRASSE" and "straße", "ÉCLAIR" and
    "éclair", "ΌΣΟΣ" and "όσος", "Ｃａｆé" and "café" fold alike.

    Every store compares these folded forms, stored beside the name where a database has to
    index them, so each gives the same answers whatever its collation or Unicode tables.
    Accents are kept: "eclair" does not find "Éclair" (docs/api/products.md).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


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
                or search_fold(self.name_contains) in search_fold(product.name)
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
