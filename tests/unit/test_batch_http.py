"""POST /products/batch on the in-memory adapter: all or nothing, in input order."""

import json
import time
from typing import Any

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from tests.unit.test_security import API_KEY, build_app


def item(n: int, **fields: Any) -> dict[str, Any]:
    return {"sku": f"SKU-{n}", "name": f"Product {n}", "price": "2.50", "quantity": n, **fields}


def batch(writer: TestClient, mode: str, products: list[Any], **headers: str) -> Any:
    body = {"mode": mode, "products": products}
    return writer.post("/products/batch", json=body, headers=headers)


def test_a_create_batch_writes_every_product_in_input_order(
    writer: TestClient, memory: InMemoryDatabase
) -> None:
    response = batch(writer, "create", [item(n) for n in range(5)])
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["status"] for i in items] == [201] * 5
    assert [i["product"]["sku"] for i in items] == [f"SKU-{n}" for n in range(5)]
    assert all(i["product"]["version"] == 1 for i in items)
    assert len(memory.store.products) == 5
    # Every product starting with stock has its initial entry; SKU-0 starts at 0.
    assert sorted(e.delta for e in memory.store.ledger.values()) == [1, 2, 3, 4]


def test_an_upsert_batch_creates_new_skus_and_replaces_existing_ones(
    writer: TestClient, memory: InMemoryDatabase
) -> None:
    first = batch(writer, "create", [item(1), item(2)]).json()["items"]
    response = batch(writer, "upsert", [item(2, quantity=9), item(3)])
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["status"] for i in items] == [200, 201]
    replaced = items[0]["product"]
    assert replaced["id"] == first[1]["product"]["id"]
    assert (replaced["version"], replaced["quantity"]) == (2, 9)
    entries = [e for e in memory.store.ledger.values() if str(e.product_id) == replaced["id"]]
    assert sorted((e.reason, e.delta) for e in entries) == [("initial", 2), ("set", 7)]


def test_a_sku_twice_in_one_batch_is_409_naming_both_indexes(
    writer: TestClient, memory: InMemoryDatabase
) -> None:
    response = batch(writer, "upsert", [item(1), item(2), item(1, name="Again")])
    assert response.status_code == 409
    assert response.json()["type"] == "urn:cme:problem:duplicate-sku"
    assert "products[0, 2]" in response.json()["detail"]
    assert memory.store.products == {}


def test_a_create_batch_with_an_existing_sku_is_409_and_writes_nothing(
    writer: TestClient, memory: InMemoryDatabase
) -> None:
    batch(writer, "create", [item(7)])
    before = dict(memory.store.products), dict(memory.store.ledger)
    response = batch(writer, "create", [item(1), item(2), item(7)])
    assert response.status_code == 409
    assert "products[2]" in response.json()["detail"]
    assert (dict(memory.store.products), dict(memory.store.ledger)) == before


def test_invalid_fields_are_422_named_by_their_place_in_the_batch(
    writer: TestClient, memory: InMemoryDatabase
) -> None:
    products = [item(0), item(1, price="-1"), "not an object", item(3, quantity=-1, extra=1)]
    response = batch(writer, "create", products)
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {
        "products[1].price",
        "products[2]",
        "products[3].quantity",
        "products[3].extra",
    }
    assert memory.store.products == {}


def test_the_batch_envelope_is_validated(writer: TestClient) -> None:
    cases = [
        ({"mode": "merge", "products": [item(1)]}, "mode"),
        ({"mode": "create", "products": []}, "products"),
        ({"mode": "create", "products": [item(n) for n in range(1001)]}, "products"),
        ({"mode": "create"}, "products"),
        ({"mode": "create", "products": {}}, "products"),
        ({"mode": "create", "products": [item(1)], "dry_run": True}, "dry_run"),
    ]
    for body, field in cases:
        response = writer.post("/products/batch", json=body)
        assert response.status_code == 422, body
        assert field in {e["field"] for e in response.json()["errors"]}


def test_a_batch_body_may_reach_4_mib_but_not_pass_it(writer: TestClient) -> None:
    # Long descriptions: 1000 products of about 4 KiB each, far over the usual 64 KiB.
    products = [item(n, description="d" * 4000) for n in range(1000)]
    body = json.dumps({"mode": "create", "products": products}).encode()
    assert 64 * 1024 < len(body) <= 4 * 1024 * 1024
    ok = writer.post("/products/batch", content=body, headers={"Content-Type": "application/json"})
    assert ok.status_code == 200
    too_big = body[:-1] + b" " * (4 * 1024 * 1024 - len(body) + 1) + b"}"
    refused = writer.post(
        "/products/batch", content=too_big, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"


def test_other_routes_keep_the_64_kib_limit(writer: TestClient) -> None:
    body = json.dumps({"sku": "X", "name": "n", "price": 1, "quantity": 1, "d": "x" * 70_000})
    response = writer.post("/products", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_retried_batch_with_an_idempotency_key_gets_the_original_answer(
    writer: TestClient, memory: InMemoryDatabase
) -> None:
    products = [item(1), item(2)]
    first = batch(writer, "upsert", products, **{"Idempotency-Key": "import-1"})
    again = batch(writer, "upsert", products, **{"Idempotency-Key": "import-1"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert [p.version for p in memory.store.products.values()] == [1, 1]
    other = batch(writer, "upsert", [item(3)], **{"Idempotency-Key": "import-1"})
    assert other.status_code == 422


def test_other_methods_on_the_batch_path_are_405_not_a_product_lookup(writer: TestClient) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = writer.request(method, "/products/batch")
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"
        assert response.headers["content-type"] == "application/problem+json"


def test_a_retried_batch_whose_product_was_deleted_since_is_refused(writer: TestClient) -> None:
    products = [item(1), item(2)]
    first = batch(writer, "create", products, **{"Idempotency-Key": "import-2"})
    gone = first.json()["items"][1]["product"]["id"]
    assert writer.delete(f"/products/{gone}").status_code == 204
    again = batch(writer, "create", products, **{"Idempotency-Key": "import-2"})
    assert again.status_code == 409
    assert again.json()["type"] == "urn:cme:problem:idempotent-product-deleted"


def post_raw(writer: TestClient, text: str) -> Any:
    headers = {"Content-Type": "application/json"}
    return writer.post("/products/batch", content=text.encode(), headers=headers)


def test_a_batch_of_300000_unknown_fields_lists_100_errors_and_counts_the_rest(
    writer: TestClient,
) -> None:
    product = ",".join(f'"k{n:06}":0' for n in range(300_000))
    response = post_raw(writer, f'{{"mode":"upsert","products":[{{{product}}}]}}')
    assert response.status_code == 422
    assert len(response.content) < 2**20
    problem = response.json()
    # The 300,000 unknown fields and the 4 required ones missing: the first 100 in field order.
    assert problem["errors"][:2] == [
        {"field": "products[0].k000000", "message": "unknown field"},
        {"field": "products[0].k000001", "message": "unknown field"},
    ]
    assert len(problem["errors"]) == 100
    assert problem["unlisted_errors"] == 300_004 - 100
    assert problem["detail"] == "300004 fields are not valid; the first 100 are listed"


def test_errors_across_many_products_are_capped_too(writer: TestClient) -> None:
    response = batch(writer, "create", [item(n, price="-1") for n in range(1000)])
    assert response.status_code == 422
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == [f"products[{n}].price" for n in range(100)]
    assert problem["unlisted_errors"] == 900


def test_a_long_unknown_field_name_is_echoed_cut_to_64_characters(writer: TestClient) -> None:
    response = batch(writer, "create", [item(1, **{"x" * 1_000_000: 1})])
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error == {"field": "products[0]." + "x" * 63 + "\u2026", "message": "unknown field"}
    assert len(response.content) < 1000


def test_a_body_of_200000_names_with_lone_surrogates_lists_100_of_them(writer: TestClient) -> None:
    names = ",".join(f'"\\ud800{n}":0' for n in range(200_000))
    response = post_raw(writer, f"{{{names}}}")
    assert response.status_code == 422
    assert len(response.content) < 2**20
    problem = response.json()
    assert len(problem["errors"]) == 100
    assert problem["errors"][0]["field"] == "(a field name)"
    assert problem["unlisted_errors"] == 200_000 - 100


@pytest.mark.parametrize(("lists", "status"), [(30, 422), (31, 400)])
def test_json_nested_32_levels_is_read_and_33_is_too_deep(
    writer: TestClient, lists: int, status: int
) -> None:
    # The body object is level 1, each list one more, the 0 inside the innermost the last.
    response = post_raw(writer, '{"x":' + "[" * lists + "0" + "]" * lists + "}")
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["type"] == "urn:cme:problem:too-deep"


@pytest.mark.anyio
async def test_a_batch_sized_body_is_decoded_off_the_event_loop(memory: InMemoryDatabase) -> None:
    """While a 3.6 MB body decodes, the worker's other tasks still run."""
    product = ",".join(f'"k{n:06}":0' for n in range(300_000))
    body = f'{{"mode":"upsert","products":[{{{product}}}]}}'.encode()
    transport = httpx.ASGITransport(app=build_app(memory))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await anyio.sleep(0.001)

    async with (
        httpx.AsyncClient(transport=transport, base_url="http://cme") as client,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(ticker)
        await anyio.sleep(0.01)
        start = time.perf_counter()
        response = await client.post(
            "/products/batch",
            content=body,
            headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
        )
        end = time.perf_counter()
        tasks.cancel_scope.cancel()
    assert response.status_code == 422
    during = [t for t in ticks if start < t < end]
    assert len(during) >= 10, f"{len(during)} ticks in {end - start:.2f} s"
