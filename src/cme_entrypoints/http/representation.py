"""How products look on the wire: JSON fields, ETags and If-Match parsing."""

from typing import Any

import orjson
from starlette.responses import Response

from cme_domain.product import Product


def product_json(product: Product) -> dict[str, Any]:
    # orjson writes the UUID and the UTC datetimes itself (RFC 3339, "Z"), far faster than
    # formatting them in Python: a page of 100 products has 300 of them.
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": f"{product.price:.2f}",
        "quantity": product.quantity,
        "created_at": product.created_at,
        "updated_at": product.updated_at,
        "version": product.version,
    }


def etag(product: Product) -> str:
    return f'"v{product.version}"'


def parse_etag_version(value: str) -> int | None:
    """The version an entity tag names, or None when it names none of ours."""
    tag = value.strip().removeprefix("W/")
    if len(tag) > 2 and tag.startswith('"v') and tag.endswith('"') and tag[2:-1].isdigit():
        return int(tag[2:-1])
    return None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = orjson.dumps(body, option=orjson.OPT_UTC_Z)
    return Response(content, status, headers, media_type="application/json")


def product_response(product: Product, status: int = 200, **headers: str) -> Response:
    return json_response(product_json(product), status, {"ETag": etag(product), **headers})
