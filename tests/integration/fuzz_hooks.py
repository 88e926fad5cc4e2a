"""Schemathesis hooks for the fuzz run: numeric prices cut to cents, as the contract asks, and
the change feed's long polls cut short.

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


WAIT_MAX = 30  # the change feed's `wait` maximum, in the schema


@schemathesis.hook
def map_query(context: Any, query: Any) -> Any:
    """A valid `wait` is made 0: a long poll lasts as long as it was asked to (up to 30 s), past
    the run's 5 s request timeout. An invalid one stays as it is, for the negative phase."""
    wait = query.get("wait") if isinstance(query, dict) else None
    if isinstance(wait, str) and wait.isascii() and wait.isdigit():
        wait = int(wait)
    if isinstance(wait, int) and not isinstance(wait, bool) and 0 < wait <= WAIT_MAX:
        query["wait"] = 0
    return query
