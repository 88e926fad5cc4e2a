"""The OpenAPI document is the contract: it lists exactly the app's routes, and /docs renders it."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from tests.unit.conftest import API_KEY

METHODS = {"get", "put", "post", "patch", "delete"}


def app_operations(client: TestClient) -> set[tuple[str, str]]:
    operations = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            continue  # static assets of /docs, not API operations
        assert isinstance(route, Route)
        operations |= {(m.lower(), route.path_format) for m in route.methods or () if m != "HEAD"}
    return operations


def documented_operations(document: dict[str, object]) -> set[tuple[str, str]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {(m, path) for path, item in paths.items() for m in item if m in METHODS}


def test_the_document_describes_exactly_the_routes_the_app_serves(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert documented_operations(document) == app_operations(client)


def test_every_response_code_the_app_can_send_for_a_write_is_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/products"]["post"]
    assert {"201", "400", "401", "409", "413", "415", "422", "503"} <= operation["responses"].keys()


def test_docs_page_loads_only_assets_served_by_the_app(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets
    for asset in assets:
        assert asset.startswith("/docs/"), asset
        assert client.get(asset).status_code == 200, asset


def test_cme_openapi_prints_the_served_document(client: TestClient, tmp_path: Path) -> None:
    cme = str(Path(sys.executable).with_name("cme"))
    printed = subprocess.run(
        [cme, "openapi"], capture_output=True, text=True, check=True, cwd=tmp_path, timeout=60
    )
    assert json.loads(printed.stdout) == client.get("/openapi.json").json()


def schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": document["components"]})


@pytest.mark.parametrize("schema", ["ProductInput", "ProductPatch"])
@pytest.mark.parametrize("price", [19.99, 0.07, 0.1, 9999999999.99, "19.99", "0.07"])
def test_a_json_schema_validator_accepts_the_prices_the_server_accepts(
    client: TestClient, schema: str, price: object
) -> None:
    document = client.get("/openapi.json").json()
    body = {"sku": "LAMP-1", "name": "Desk lamp", "price": price, "quantity": 4}
    validate = schema_validator(document, {"$ref": f"#/components/schemas/{schema}"})
    assert validate.is_valid(body), list(validate.iter_errors(body))
    assert client.post("/products", json=body, headers={"X-API-Key": API_KEY}).status_code in (
        201,
        409,
    )


@pytest.mark.parametrize("price", [-1, 10_000_000_000, "1.234", "-1"])
def test_a_json_schema_validator_rejects_prices_out_of_range(
    client: TestClient, price: object
) -> None:
    document = client.get("/openapi.json").json()
    body = {"sku": "LAMP-1", "name": "Desk lamp", "price": price, "quantity": 4}
    assert not schema_validator(document, {"$ref": "#/components/schemas/ProductInput"}).is_valid(
        body
    )


def test_patch_documents_merge_patch_as_its_only_body_type(client: TestClient) -> None:
    patch = client.get("/openapi.json").json()["paths"]["/products/{id}"]["patch"]
    assert list(patch["requestBody"]["content"]) == ["application/merge-patch+json"]


def test_every_request_body_has_an_example_its_schema_accepts(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    bodies = [
        (path, method, media)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS and "requestBody" in operation
        for media in operation["requestBody"]["content"].values()
    ]
    assert len(bodies) == 9
    for path, method, media in bodies:
        assert "example" in media, (path, method)
        schema_validator(document, media["schema"]).validate(media["example"])


def test_every_schema_with_examples_accepts_them(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {
        "Product",
        "ProductInput",
        "ProductPatch",
        "ProductPage",
        "StockAdjustmentInput",
        "StockEntry",
        "StockEntryPage",
        "BatchInput",
        "BatchResult",
        "ReservationLine",
        "ReservationRequest",
        "Reservation",
        "Extension",
    } <= {name for name, schema in schemas.items() if schema.get("examples")}
    for name, schema in schemas.items():
        for example in schema.get("examples", []):
            ref = {"$ref": f"#/components/schemas/{name}"}
            schema_validator(document, ref).validate(example)


def test_every_json_response_body_has_an_example_its_schema_accepts(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                media = response.get("content", {}).get("application/json")
                if media is None or media["schema"].get("type") == "object":
                    continue  # /openapi.json: the document itself
                assert "example" in media, (path, method, status)
                schema_validator(document, media["schema"]).validate(media["example"])
                checked += 1
    assert checked == 24


def test_available_is_in_every_product_answer_but_no_request_and_no_change_event(
    client: TestClient,
) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "available" in schemas["Product"]["required"]
    assert schemas["Product"]["properties"]["available"]["readOnly"] is True
    for name in ("ProductInput", "ProductPatch", "ProductSnapshot"):
        assert schemas[name]["additionalProperties"] is False
        assert "available" not in schemas[name]["properties"], name
    product = schemas["ChangeEvent"]["properties"]["product"]["oneOf"][0]
    assert product == {"$ref": "#/components/schemas/ProductSnapshot"}
