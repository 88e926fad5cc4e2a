"""Stock adjustments, the ledger and batch writes over HTTP, on the in-memory adapter."""

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import orjson
import pytest
from starlette.testclient import TestClient

from cme_domain.listing import Keyset, SortField, SortOrder
from cme_entrypoints.http.cursor import LEDGER_SORT, BadCursor, CursorCodec, _b64

LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.99", "quantity": 4}
SALE = {"delta": -3, "reason": "sale", "reference": "order-1042"}
T0 = datetime(2026, 1, 2, tzinfo=UTC)


def create(writer: TestClient, **fields: Any) -> dict[str, Any]:
    response = writer.post("/products", json={**LAMP, **fields})
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product


def ledger(client: TestClient, product_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/products/{product_id}/stock-adjustments?limit=100")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def quantity(client: TestClient, product_id: str) -> int:
    value: int = client.get(f"/products/{product_id}").json()["quantity"]
    return value


def test_an_adjustment_answers_201_with_its_entry_location_and_the_new_etag(
    writer: TestClient,
) -> None:
    product = create(writer)
    response = writer.post(f"/products/{product['id']}/stock-adjustments", json=SALE)
    assert response.status_code == 201, response.text
    entry = response.json()
    assert entry["product_id"] == product["id"]
    assert (entry["delta"], entry["reason"], entry["reference"]) == (-3, "sale", "order-1042")
    assert (entry["quantity_after"], entry["version_after"]) == (1, 2)
    assert set(entry) == {
        "id",
        "product_id",
        "delta",
        "reason",
        "reference",
        "quantity_after",
        "version_after",
        "created_at",
    }
    location = f"/products/{product['id']}/stock-adjustments/{entry['id']}"
    assert response.headers["location"] == location
    assert response.headers["etag"] == '"v2"'
    current = writer.get(f"/products/{product['id']}")
    assert current.json()["quantity"] == 1
    assert current.headers["etag"] == '"v2"'


def test_the_ledger_lists_every_change_newest_first_and_sums_to_the_quantity(
    writer: TestClient,
) -> None:
    product = create(writer)
    url = f"/products/{product['id']}"
    writer.post(f"{url}/stock-adjustments", json={"delta": 6, "reason": "restock"})
    writer.put(url, json={**LAMP, "quantity": 2})
    writer.patch(
        url, content=b'{"quantity": 7}', headers={"Content-Type": "application/merge-patch+json"}
    )
    writer.patch(
        url, content=b'{"name": "Lamp"}', headers={"Content-Type": "application/merge-patch+json"}
    )
    entries = ledger(writer, product["id"])
    assert [(e["reason"], e["delta"]) for e in entries] == [
        ("set", 5),
        ("set", -8),
        ("restock", 6),
        ("initial", 4),
    ]
    assert sum(e["delta"] for e in entries) == quantity(writer, product["id"]) == 7


def test_a_product_created_with_no_stock_has_an_empty_ledger(writer: TestClient) -> None:
    product = create(writer, quantity=0)
    assert ledger(writer, product["id"]) == []


def test_an_adjustment_below_zero_is_409_insufficient_stock_and_writes_nothing(
    writer: TestClient,
) -> None:
    product = create(writer)
    response = writer.post(
        f"/products/{product['id']}/stock-adjustments", json={**SALE, "delta": -5}
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:cme:problem:insufficient-stock"
    assert "only 4 available" in problem["detail"]
    assert quantity(writer, product["id"]) == 4
    assert len(ledger(writer, product["id"])) == 1


def test_an_adjustment_past_the_largest_quantity_is_422(writer: TestClient) -> None:
    product = create(writer, quantity=2**31 - 2)
    response = writer.post(
        f"/products/{product['id']}/stock-adjustments", json={"delta": 2, "reason": "restock"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "delta"
    assert quantity(writer, product["id"]) == 2**31 - 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"delta": 0, "reason": "sale"}, "delta"),
        ({"delta": "3", "reason": "sale"}, "delta"),
        ({"delta": 1.5, "reason": "sale"}, "delta"),
        ({"delta": True, "reason": "sale"}, "delta"),
        ({"delta": 2**31, "reason": "sale"}, "delta"),
        ({"delta": 10**400, "reason": "sale"}, "delta"),
        ({"reason": "sale"}, "delta"),
        ({"delta": 1}, "reason"),
        ({"delta": 1, "reason": "Sale"}, "reason"),
        ({"delta": 1, "reason": "x" * 65}, "reason"),
        ({"delta": 1, "reason": ""}, "reason"),
        ({"delta": 1, "reason": "initial"}, "reason"),
        ({"delta": -1, "reason": "set"}, "reason"),
        ({"delta": 1, "reason": "sale", "reference": "r" * 201}, "reference"),
        ({"delta": 1, "reason": "sale", "reference": "a\nb"}, "reference"),
        ({"delta": 1, "reason": "sale", "reference": 7}, "reference"),
        ({"delta": 1, "reason": "sale", "extra": 1}, "extra"),
    ],
)
def test_an_invalid_adjustment_is_422_naming_the_field(
    writer: TestClient, body: dict[str, Any], field: str
) -> None:
    product = create(writer)
    response = writer.post(
        f"/products/{product['id']}/stock-adjustments",
        content=json.dumps(body),  # orjson refuses integers past 64 bits
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}
    assert quantity(writer, product["id"]) == 4


def test_if_match_is_honoured_on_an_adjustment(writer: TestClient) -> None:
    product = create(writer)
    url = f"/products/{product['id']}/stock-adjustments"
    stale = writer.post(url, json=SALE, headers={"If-Match": '"v2"'})
    assert stale.status_code == 412
    fresh = writer.post(url, json=SALE, headers={"If-Match": '"v1"'})
    assert fresh.status_code == 201


def test_an_unknown_product_is_404_for_adjustments_and_ledger(writer: TestClient) -> None:
    unknown = "01a235a8-5a47-7d2b-aea0-b94af8dd911e"
    assert writer.post(f"/products/{unknown}/stock-adjustments", json=SALE).status_code == 404
    assert writer.get(f"/products/{unknown}/stock-adjustments").status_code == 404
    assert writer.get("/products/not-a-uuid/stock-adjustments").status_code == 404


def test_a_retried_adjustment_with_an_idempotency_key_applies_once(writer: TestClient) -> None:
    product = create(writer)
    url = f"/products/{product['id']}/stock-adjustments"
    first = writer.post(url, json=SALE, headers={"Idempotency-Key": "sale-1042"})
    again = writer.post(url, json=SALE, headers={"Idempotency-Key": "sale-1042"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert quantity(writer, product["id"]) == 1
    changed = writer.post(url, json={**SALE, "delta": -1}, headers={"Idempotency-Key": "sale-1042"})
    assert changed.status_code == 422
    assert changed.json()["type"] == "urn:cme:problem:idempotency-key-reused"


def test_one_idempotency_key_reused_for_another_operation_is_refused(writer: TestClient) -> None:
    product = create(writer)
    url = f"/products/{product['id']}/stock-adjustments"
    assert writer.post(url, json=SALE, headers={"Idempotency-Key": "k"}).status_code == 201
    create_with_it = writer.post("/products", json=LAMP, headers={"Idempotency-Key": "k"})
    assert create_with_it.status_code == 422
    batch = {"mode": "create", "products": [{**LAMP, "sku": "OTHER"}]}
    batch_with_it = writer.post("/products/batch", json=batch, headers={"Idempotency-Key": "k"})
    assert batch_with_it.status_code == 422


def test_writes_need_credentials(client: TestClient) -> None:
    url = "/products/01a235a8-5a47-7d2b-aea0-b94af8dd911e/stock-adjustments"
    assert client.post(url, json=SALE).status_code == 401
    batch = {"mode": "create", "products": [LAMP]}
    assert client.post("/products/batch", json=batch).status_code == 401


def test_the_ledger_pages_with_a_signed_cursor(writer: TestClient) -> None:
    product = create(writer, quantity=50)
    url = f"/products/{product['id']}/stock-adjustments"
    for _ in range(4):
        writer.post(url, json={"delta": -1, "reason": "sale"})
    first = writer.get(f"{url}?limit=3").json()
    assert len(first["items"]) == 3
    rest = writer.get(f"{url}?limit=3&cursor={first['next_cursor']}").json()
    assert len(rest["items"]) == 2
    assert rest["next_cursor"] is None
    seen = [e["id"] for e in first["items"] + rest["items"]]
    assert len(set(seen)) == 5
    assert writer.get(f"{url}?cursor=bogus").status_code == 400
    assert writer.get(f"{url}?limit=0").status_code == 422


def test_a_ledger_cursor_holds_a_version_and_nothing_else_passes_for_one() -> None:
    codec = CursorCodec(b"k" * 32, _no_secret)
    entry = uuid4()
    cursor = codec.encode(Keyset(7, entry), LEDGER_SORT, SortOrder.DESC)
    assert codec.decode(cursor, LEDGER_SORT, SortOrder.DESC) == Keyset(7, entry)
    product_page = codec.encode(Keyset(T0, entry), SortField.CREATED_AT, SortOrder.DESC)
    for value in ("0", "07", "-1", "2147483648", "1.5", "x"):
        forged = orjson.dumps([LEDGER_SORT, "desc", value, entry.hex])
        signature = codec._sign(forged)
        bad = f"{_b64(forged)}.{_b64(signature)}"
        with pytest.raises(BadCursor, match="malformed"):
            codec.decode(bad, LEDGER_SORT, SortOrder.DESC)
    with pytest.raises(BadCursor, match="different sort"):
        codec.decode(product_page, LEDGER_SORT, SortOrder.DESC)


async def _no_secret() -> bytes:
    raise AssertionError("the codec has its key")


def test_deleting_a_product_deletes_its_ledger(writer: TestClient, memory: Any) -> None:
    product = create(writer)
    writer.post(f"/products/{product['id']}/stock-adjustments", json=SALE)
    assert writer.delete(f"/products/{product['id']}").status_code == 204
    assert memory.store.ledger == {}


def test_metrics_count_adjustments_by_outcome_and_batch_products(writer: TestClient) -> None:
    product = create(writer, quantity=1)
    url = f"/products/{product['id']}/stock-adjustments"
    writer.post(url, json={"delta": -1, "reason": "sale"})
    writer.post(url, json={"delta": -1, "reason": "sale"})
    writer.post(url, json={"delta": 2**31 - 1, "reason": "restock"})
    writer.post(url, json={"delta": 2**31 - 1, "reason": "restock"})
    batch = {"mode": "upsert", "products": [{**LAMP, "sku": "B-1"}, {**LAMP, "quantity": 9}]}
    assert writer.post("/products/batch", json=batch).status_code == 200
    text = writer.get("/metrics").text
    assert 'stock_adjustments_total{outcome="applied"} 2.0' in text
    assert 'stock_adjustments_total{outcome="insufficient_stock"} 1.0' in text
    assert 'stock_adjustments_total{outcome="overflow"} 1.0' in text
    assert 'batch_products_total{outcome="created"} 1.0' in text
    assert 'batch_products_total{outcome="replaced"} 1.0' in text


def test_an_adjustments_location_serves_its_entry(writer: TestClient) -> None:
    product = create(writer)
    adjusted = writer.post(f"/products/{product['id']}/stock-adjustments", json=SALE)
    fetched = writer.get(adjusted.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == adjusted.json()
    other = create(writer, sku="OTHER")
    elsewhere = adjusted.headers["location"].replace(product["id"], other["id"])
    assert writer.get(elsewhere).status_code == 404
    unknown = f"/products/{product['id']}/stock-adjustments/{other['id']}"
    assert writer.get(unknown).status_code == 404
    assert writer.get(f"/products/{product['id']}/stock-adjustments/nope").status_code == 404
