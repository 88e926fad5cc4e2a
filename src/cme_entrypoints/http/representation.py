"""How products look on the wire: JSON fields, ETags and If-Match parsing."""

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response

from cme_domain.product import Product


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": str(product.id),
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": f"{product.price:.2f}",
        "quantity": product.quantity,
        "created_at": _timestamp(product.created_at),
        "updated_at": _timestamp(product.updated_at),
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
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def product_response(product: Product, status: int = 200, **headers: str) -> Response:
    return json_response(product_json(product), status, {"ETag": etag(product), **headers})


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
