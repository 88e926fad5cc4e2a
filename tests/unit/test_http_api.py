"""The HTTP contract through the real Starlette app on the in-memory adapter."""

import gc
from typing import Any

import orjson
import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from cme_domain.errors import StorageUnavailable
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.settings import Settings

LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.9", "quantity": 4}


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/products", json={**LAMP, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= body.keys()
    assert "Traceback" not in response.text
    return body


def test_what_start_up_built_is_frozen_while_the_app_runs(memory: InMemoryDatabase) -> None:
    """Out of the collector's reach, so full collections (the p99's pauses) skip it."""
    container = Container(settings=Settings.from_env({"DATABASE_URL": "sqlite://"}))
    container.database.override(providers.Object(memory))
    with TestClient(create_app(container)) as running:
        assert running.get("/health").status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


def test_index_health_and_db_check_answer_200(client: TestClient) -> None:
    assert client.get("/").json()["links"]["products"] == "/products"
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/db-check").json()["status"] == "ok"


def test_create_returns_201_with_location_etag_and_exact_price(writer: TestClient) -> None:
    response = writer.post("/products", json=LAMP)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/products/{body['id']}"
    assert response.headers["etag"] == '"v1"'
    assert body["price"] == "19.90"
    assert body["description"] is None
    assert body["version"] == 1
    assert body["created_at"].endswith("Z")


def test_price_is_rendered_with_two_decimals_whether_sent_as_number_or_string(
    writer: TestClient,
) -> None:
    assert create(writer, sku="A", price=0)["price"] == "0.00"
    assert create(writer, sku="B", price=12.5)["price"] == "12.50"
    assert create(writer, sku="C", price="9999999999.99")["price"] == "9999999999.99"


def test_get_returns_the_product_and_unknown_or_malformed_ids_are_404(writer: TestClient) -> None:
    product = create(writer)
    assert writer.get(f"/products/{product['id']}").json() == product
    assert_problem(writer.get("/products/00000000-0000-0000-0000-000000000000"), 404)
    assert_problem(writer.get("/products/not-a-uuid"), 404)


def test_if_none_match_with_the_current_etag_is_304(writer: TestClient) -> None:
    product = create(writer)
    response = writer.get(f"/products/{product['id']}", headers={"If-None-Match": '"v1"'})
    assert response.status_code == 304
    assert response.content == b""
    assert (
        writer.get(f"/products/{product['id']}", headers={"If-None-Match": '"v0"'}).status_code
        == 200
    )


def test_writes_without_or_with_a_wrong_api_key_are_401_and_write_nothing(
    client: TestClient, memory: InMemoryDatabase
) -> None:
    for headers in ({}, {"X-API-Key": "wrong-key-0123456789"}):
        response = client.post("/products", json=LAMP, headers=headers)
        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("ApiKey")
        assert "key" in body["detail"]
    assert memory.store.products == {}


def test_with_no_api_key_configured_every_write_is_refused() -> None:
    container = Container(settings=Settings(database_url="sqlite://"))
    container.database.override(providers.Object(InMemoryDatabase()))
    with TestClient(create_app(container)) as client:
        response = client.post("/products", json=LAMP, headers={"X-API-Key": "anything-at-all-123"})
    assert_problem(response, 401)


def test_malformed_json_is_400(writer: TestClient) -> None:
    response = writer.post(
        "/products", content=b'{"sku": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_a_json_body_that_is_not_an_object_is_422(writer: TestClient, body: bytes) -> None:
    response = writer.post("/products", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 422)


def test_json_nested_deeper_than_the_limit_is_400(writer: TestClient) -> None:
    deep = b'{"a":' * 40 + b"1" + b"}" * 40
    response = writer.post("/products", content=deep, headers={"Content-Type": "application/json"})
    assert_problem(response, 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_of_another_content_type_is_415(writer: TestClient, content_type: str) -> None:
    response = writer.post("/products", content=b"{}", headers={"Content-Type": content_type})
    assert_problem(response, 415)


def test_a_body_over_64_kib_is_413_and_nothing_is_written(
    writer: TestClient, memory: InMemoryDatabase
) -> None:
    huge = {**LAMP, "description": "x" * (65 * 1024)}
    assert_problem(writer.post("/products", json=huge), 413)
    assert memory.store.products == {}


def test_invalid_fields_are_422_naming_each_field(writer: TestClient) -> None:
    bad = {"sku": "has space", "name": "  ", "price": "1.234", "quantity": "3"}
    body = assert_problem(writer.post("/products", json=bad), 422)
    assert {e["field"] for e in body["errors"]} == {"sku", "name", "price", "quantity"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("quantity", 3.5), ("quantity", True), ("price", -1), ("price", "NaN"), ("id", "x")],
)
def test_each_out_of_contract_value_is_422(writer: TestClient, field: str, value: Any) -> None:
    body = assert_problem(writer.post("/products", json={**LAMP, field: value}), 422)
    assert [e["field"] for e in body["errors"]] == [field]


@pytest.mark.parametrize(
    ("literal", "field"),
    [
        (b"1e999999999", "quantity"),
        (b"-1e999999999", "quantity"),
        (b"1" * 5000, "quantity"),
        (b"1e-999999999", "quantity"),
        (b"1e999999999", "price"),
        (b"1" * 5000, "price"),
    ],
)
def test_a_number_of_huge_magnitude_is_422_on_every_write(
    writer: TestClient, literal: bytes, field: str
) -> None:
    product = create(writer)
    url = f"/products/{product['id']}"
    fields = {k: v for k, v in LAMP.items() if k != field}
    body = orjson.dumps(fields)[:-1] + b',"' + field.encode() + b'":' + literal + b"}"
    json_type = {"Content-Type": "application/json"}
    for response in (
        writer.post("/products", content=body, headers=json_type),
        writer.put(url, content=body, headers=json_type),
        writer.patch(url, content=body, headers={"Content-Type": "application/merge-patch+json"}),
    ):
        assert [e["field"] for e in assert_problem(response, 422)["errors"]] == [field]


@pytest.mark.parametrize("literal", [b"1e9999999999999999999", b"1e-9999999999999999999"])
def test_a_number_whose_exponent_decimal_cannot_hold_is_422(
    writer: TestClient, literal: bytes
) -> None:
    body = b'{"sku": "A", "name": "n", "price": "1", "quantity": ' + literal + b"}"
    response = writer.post("/products", content=body, headers={"Content-Type": "application/json"})
    assert "out of range" in assert_problem(response, 422)["detail"]


def test_duplicate_sku_is_409_and_the_first_product_is_kept(
    writer: TestClient, memory: InMemoryDatabase
) -> None:
    first = create(writer)
    assert_problem(writer.post("/products", json={**LAMP, "name": "Other"}), 409)
    assert [p.name for p in memory.store.products.values()] == [first["name"]]


def test_put_replaces_the_product_and_bumps_the_version(writer: TestClient) -> None:
    product = create(writer)
    response = writer.put(f"/products/{product['id']}", json={**LAMP, "quantity": 9})
    assert response.status_code == 200
    assert response.json()["quantity"] == 9
    assert response.json()["version"] == 2
    assert response.headers["etag"] == '"v2"'


def test_put_with_a_stale_if_match_is_412_and_changes_nothing(writer: TestClient) -> None:
    product = create(writer)
    url = f"/products/{product['id']}"
    assert writer.put(url, json=LAMP, headers={"If-Match": '"v1"'}).status_code == 200
    assert_problem(writer.put(url, json={**LAMP, "quantity": 1}, headers={"If-Match": '"v1"'}), 412)
    assert writer.get(url).json()["quantity"] == LAMP["quantity"]


def test_patch_merges_fields_and_null_clears_the_description(writer: TestClient) -> None:
    product = create(writer, description="bright")
    url = f"/products/{product['id']}"
    response = writer.patch(
        url,
        content=b'{"quantity": 7, "description": null}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["quantity"], response.json()["description"]) == (7, None)
    assert response.json()["name"] == LAMP["name"]


def test_patch_cannot_remove_a_required_field(writer: TestClient) -> None:
    product = create(writer)
    response = writer.patch(
        f"/products/{product['id']}",
        content=b'{"name": null}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert [e["field"] for e in assert_problem(response, 422)["errors"]] == ["name"]


def test_delete_is_204_then_404(writer: TestClient) -> None:
    product = create(writer)
    url = f"/products/{product['id']}"
    assert writer.delete(url).status_code == 204
    assert_problem(writer.get(url), 404)
    assert_problem(writer.delete(url), 404)


def test_delete_with_a_stale_if_match_is_412_and_the_product_stays(writer: TestClient) -> None:
    product = create(writer)
    url = f"/products/{product['id']}"
    assert_problem(writer.delete(url, headers={"If-Match": '"v7"'}), 412)
    assert writer.get(url).status_code == 200


def test_an_unknown_route_is_404_and_a_wrong_method_is_405_as_problems(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404)
    assert_problem(client.patch("/health"), 405)


def test_listing_pages_through_every_product_once_with_cursors(writer: TestClient) -> None:
    ids = {create(writer, sku=f"SKU-{n}", name=f"Item {n:02}")["id"] for n in range(7)}
    seen: list[str] = []
    url = "/products?limit=3&sort=name&order=desc"
    while url:
        page = writer.get(url).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        url = f"/products?limit=3&sort=name&order=desc&cursor={cursor}" if cursor else ""
    assert len(seen) == len(ids)
    assert set(seen) == ids


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=x", "sort=sku", "order=up", "min_price=-1"]
)
def test_listing_parameters_out_of_range_are_422(client: TestClient, query: str) -> None:
    body = assert_problem(client.get(f"/products?{query}"), 422)
    assert body["errors"][0]["field"] == query.split("=")[0]


@pytest.mark.parametrize("cursor", ["garbage", "a.b", "eyJ4IjoxfQ.AAAA", ""])
def test_a_forged_or_garbled_cursor_is_400(client: TestClient, cursor: str) -> None:
    assert_problem(client.get(f"/products?cursor={cursor}"), 400)


def test_a_cursor_used_with_another_sort_is_400(writer: TestClient) -> None:
    for n in range(3):
        create(writer, sku=f"S{n}")
    cursor = writer.get("/products?limit=1&sort=price").json()["next_cursor"]
    assert cursor
    assert_problem(writer.get(f"/products?limit=1&sort=name&cursor={cursor}"), 400)


def test_listing_filters_by_sku_name_and_price(writer: TestClient) -> None:
    create(writer, sku="A", name="Red lamp", price="5")
    create(writer, sku="B", name="Blue LAMP", price="15")
    create(writer, sku="C", name="Chair", price="25")

    def skus(query: str) -> list[str]:
        return [p["sku"] for p in writer.get(f"/products?{query}").json()["items"]]

    assert skus("sku=B") == ["B"]
    assert sorted(skus("q=lamp")) == ["A", "B"]
    assert skus("min_price=10&max_price=20") == ["B"]


def test_idempotent_create_replays_the_first_response(
    writer: TestClient, memory: InMemoryDatabase
) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = writer.post("/products", json=LAMP, headers=headers)
    again = writer.post("/products", json=LAMP, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(memory.store.products) == 1
    other = writer.post("/products", json={**LAMP, "quantity": 1}, headers=headers)
    assert assert_problem(other, 422)["errors"][0]["field"] == "Idempotency-Key"


class UnreachableDatabase(InMemoryDatabase):
    def unit_of_work(self, *, atomic: bool = True) -> Any:
        raise StorageUnavailable("connection refused")

    async def ping(self) -> None:
        raise StorageUnavailable("connection refused")


def test_an_unreachable_database_is_503_with_retry_after() -> None:
    container = Container(settings=Settings(database_url="sqlite://", api_keys=("k" * 20,)))
    container.database.override(providers.Object(UnreachableDatabase()))
    with TestClient(create_app(container)) as client:
        for response in (
            client.get("/db-check"),
            client.get("/products"),
            client.post("/products", json=LAMP, headers={"X-API-Key": "k" * 20}),
        ):
            assert_problem(response, 503)
            assert response.headers["retry-after"].isdigit()
        assert client.get("/health").status_code == 200


def test_every_response_carries_a_request_id_and_a_valid_one_is_echoed(client: TestClient) -> None:
    assert len(client.get("/health").headers["x-request-id"]) == 32
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    injected = client.get("/health", headers={"X-Request-ID": "bad\tid"})
    assert injected.headers["x-request-id"] != "bad\tid"


def test_where_the_manual_is_published_the_index_and_the_docs_link_it() -> None:
    manual = "https://docs.example.test/cme/"
    container = Container(settings=Settings(database_url="sqlite://", docs_url=manual))
    container.database.override(providers.Object(InMemoryDatabase()))
    with TestClient(create_app(container)) as client:
        assert client.get("/").json()["links"]["manual"] == manual
        assert client.get("/openapi.json").json()["externalDocs"]["url"] == manual


def test_without_docs_url_nothing_links_a_manual(client: TestClient) -> None:
    assert "manual" not in client.get("/").json()["links"]
    assert "externalDocs" not in client.get("/openapi.json").json()
