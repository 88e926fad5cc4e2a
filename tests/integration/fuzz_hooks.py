"""Schemathesis hooks for the fuzz run: numeric prices cut to cents, as the contract asks.

The contract allows at most 2 decimals, which JSON Schema cannot say for a JSON number in a way
that validators working in binary floating point evaluate correctly (multipleOf 0.01 rejects
19.99), so the document leaves it out and this hook keeps generated numbers within it instead.
Only non-negative prices are cut: a negative one must stay negative for the negative phase.
"""

import math
from typing import Any

import schemathesis


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    price = body.get("price") if isinstance(body, dict) else None
    if isinstance(price, float) and math.isfinite(price) and price >= 0:
        body["price"] = math.floor(price * 100) / 100
    return body
