"""Routes do not depend on their order: a fixed segment is never taken for a product id."""

import uuid
from typing import Any

from starlette.testclient import TestClient


def lamp(sku: str) -> dict[str, Any]:
    return {"sku": sku, "name": "Lamp", "price": "1.00", "quantity": 1}


def test_fixed_segments_reach_their_routes_whatever_the_order(writer: TestClient) -> None:
    writer.app.router.routes.reverse()  # type: ignore[attr-defined]
    batch = writer.get("/products/batch")
    assert batch.status_code == 405
    assert batch.headers["allow"] == "POST"
    assert writer.get("/products/changes").status_code == 200
    created = writer.post("/products", json=lamp("ROUTE-1"))
    assert created.status_code == 201
    assert writer.get(f"/products/{created.json()['id']}").status_code == 200


def test_a_segment_that_is_no_uuid_is_no_product(writer: TestClient) -> None:
    for segment in ("not-a-uuid", uuid.uuid4().hex, f"{{{uuid.uuid4()}}}"):
        response = writer.get(f"/products/{segment}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


def test_an_upper_case_id_names_the_same_product(writer: TestClient) -> None:
    created = writer.post("/products", json=lamp("ROUTE-2"))
    product_id = created.json()["id"]
    assert writer.get(f"/products/{product_id.upper()}").json()["id"] == product_id
    ledger = writer.get(f"/products/{product_id.upper()}/stock-adjustments")
    assert ledger.status_code == 200
