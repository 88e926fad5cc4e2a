"""How products look on the wire: JSON fields, ETags and If-Match parsing."""

import re
from typing import Any, Final

import orjson
from starlette.responses import Response

from cme_domain.product import VERSION_MAX, Product

# Our entity tags exactly as etag() writes them: "v" and a version without leading zeros.
_STRONG_TAG: Final = re.compile(r'"v([1-9][0-9]{0,9})"')


def product_json(product: Product) -> dict[str, Any]:
    """A product as it is now, with what reservations leave of it available."""
    # orjson writes the UUID and the UTC datetimes itself (RFC 3339, "Z"), far faster than
    # formatting them in Python: a page of 100 products has 300 of them.
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": f"{product.price:.2f}",
        "quantity": product.quantity,
        "available": product.available,
        "created_at": product.created_at,
        "updated_at": product.updated_at,
        "version": product.version,
    }


def snapshot_json(product: Product) -> dict[str, Any]:
    """A product's fields as a write left them: a change event's, which holds come and go
    without (an event's `available` would be stale the moment a hold changed)."""
    body = product_json(product)
    del body["available"]
    return body


def etag(product: Product) -> str:
    return version_etag(product.version)


def version_etag(version: int) -> str:
    """The entity tag of a product at a version: what If-Match and If-None-Match compare."""
    return f'"v{version}"'


def parse_etag_version(value: str) -> int | None:
    """The version a strong entity tag names, or None when it names no version we can hold.

    If-Match compares strongly (RFC 9110 13.1.1): a weak tag (W/"v1"), another spelling of
    the number ("v01") or a version past the column's range never matches.
    """
    found = _STRONG_TAG.fullmatch(value.strip())
    if found is None:
        return None
    version = int(found[1])
    return version if version <= VERSION_MAX else None


def json_bytes(body: Any) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_bytes(body), status, headers, media_type="application/json")


def product_response(product: Product, status: int = 200, **headers: str) -> Response:
    return json_response(product_json(product), status, {"ETag": etag(product), **headers})
