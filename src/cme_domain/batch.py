"""A batch of product writes: all of them, or none."""

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

from cme_domain.errors import FieldErrors, InvalidProduct, SkusTaken
from cme_domain.product import Product, ProductSpec

BATCH_MAX: Final = 1000
BATCH_FIELDS: Final = ("mode", "products")


class BatchMode(enum.StrEnum):
    CREATE = "create"  # every product new
    UPSERT = "upsert"  # keyed on sku: new ones created, existing ones replaced as PUT does


@attrs.frozen
class Batch:
    mode: BatchMode
    specs: tuple[ProductSpec, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "Batch":
        """Validate the whole batch, naming each bad field as products[i].field."""
        errors = FieldErrors()
        errors.unknown(raw, BATCH_FIELDS)
        mode = raw.get("mode")
        if not isinstance(mode, str) or mode not in tuple(BatchMode):
            errors.add("mode", "must be one of create, upsert")
        items = raw.get("products")
        specs: list[ProductSpec] = []
        if not isinstance(items, list) or not 1 <= len(items) <= BATCH_MAX:
            errors.add("products", f"must be an array of 1 to {BATCH_MAX} products")
            items = []
        for index, item in enumerate(items):
            where = f"products[{index}]"
            if not isinstance(item, dict):
                errors.add(where, "must be an object")
                continue
            try:
                specs.append(ProductSpec.parse(item))
            except InvalidProduct as invalid:
                errors.nested(where, invalid)
        errors.raise_any()
        batch = cls(BatchMode(str(mode)), tuple(specs))
        batch.refuse_repeated_skus()
        return batch

    def refuse_repeated_skus(self) -> None:
        first: dict[str, int] = {}
        repeated: list[int] = []
        for index, spec in enumerate(self.specs):
            if spec.sku in first:
                repeated.extend(i for i in (first[spec.sku], index) if i not in repeated)
            first.setdefault(spec.sku, index)
        if repeated:
            raise SkusTaken(sorted(repeated), "a sku appears more than once in the batch")


@attrs.frozen
class BatchItem:
    """One product of a batch as written: created (201) or replaced (200)."""

    created: bool
    product: Product
