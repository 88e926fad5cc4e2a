"""Schemathesis hooks for the fuzz run: numeric prices cut to cents, as the contract asks.

The contract allows at most 2 decimals, which JSON Schema cannot say for a JSON number in a way
that validators working in binary floating point evaluate correctly (multipleOf 0.01 rejects
19.99), so the document leaves it out and this hook keeps generated numbers within it instead.
Only prices within the schema's range are cut: one out of range must stay out of it for the
negative phase.
"""

import math
from typing import Any

import schemathesis

PRICE_LIMIT = 10**10  # the schema's exclusiveMaximum


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    _cut_price(body)
    items = body.get("products") if isinstance(body, dict) else None
    if isinstance(items, list):  # a batch: each of its products
        for item in items:
            _cut_price(item)
    return body


def _cut_price(body: Any) -> None:
    price = body.get("price") if isinstance(body, dict) else None
    if isinstance(price, float) and 0 <= price < PRICE_LIMIT:
        body["price"] = math.floor(price * 100) / 100
