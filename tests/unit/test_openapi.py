"""The OpenAPI document is the contract: it lists exactly the app's routes, and /docs renders it."""

import json
import re
import subprocess
import sys
from pathlib import Path

from starlette.routing import Mount, Route
from starlette.testclient import TestClient

METHODS = {"get", "put", "post", "patch", "delete"}


def app_operations(client: TestClient) -> set[tuple[str, str]]:
    operations = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            continue  # static assets of /docs, not API operations
        assert isinstance(route, Route)
        operations |= {(m.lower(), route.path) for m in route.methods or () if m != "HEAD"}
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
