"""The API end to end: a real `cme serve` (uvicorn) on loopback, over real HTTP."""

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.integration.server import CME, running_cme

API_KEY = "e2e-key-0123456789abcdef"
LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.99", "quantity": 4}


@pytest.fixture
def postgres_api(empty_postgres_url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    env = {"DATABASE_URL": empty_postgres_url, "API_KEY": API_KEY}
    with (
        running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _),
        httpx.Client(base_url=base_url, timeout=10) as client,
    ):
        yield client


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def test_crud_flow_against_postgresql(postgres_api: httpx.Client) -> None:
    auth = {"X-API-Key": API_KEY}
    created = postgres_api.post("/products", json=LAMP, headers=auth)
    assert created.status_code == 201
    product = created.json()
    url = created.headers["location"]
    assert postgres_api.get(url).json() == product
    replaced = postgres_api.put(url, json={**LAMP, "quantity": 9}, headers=auth)
    assert (replaced.json()["quantity"], replaced.json()["version"]) == (9, 2)
    patched = postgres_api.patch(
        url,
        content=b'{"price": 5}',
        headers={**auth, "Content-Type": "application/merge-patch+json", "If-Match": '"v2"'},
    )
    assert patched.json()["price"] == "5.00"
    listed = postgres_api.get("/products").json()
    assert [p["id"] for p in listed["items"]] == [product["id"]]
    assert listed["next_cursor"] is None
    assert postgres_api.delete(url, headers=auth).status_code == 204
    problem(postgres_api.get(url), 404)


def test_every_documented_error_status_over_real_http(postgres_api: httpx.Client) -> None:
    auth = {"X-API-Key": API_KEY}
    json_type = {**auth, "Content-Type": "application/json"}
    existing = postgres_api.post("/products", json=LAMP, headers=auth).json()
    url = f"/products/{existing['id']}"

    problem(postgres_api.post("/products", content=b"{", headers=json_type), 400)
    unauthorized = postgres_api.post("/products", json=LAMP)
    problem(unauthorized, 401)
    assert "www-authenticate" in unauthorized.headers
    problem(postgres_api.get("/products/not-a-uuid"), 404)
    problem(postgres_api.post("/products", json=LAMP, headers=auth), 409)
    problem(postgres_api.put(url, json=LAMP, headers={**auth, "If-Match": '"v9"'}), 412)
    big = b'{"description": "' + b"x" * 70_000 + b'"}'
    problem(postgres_api.post("/products", content=big, headers=json_type), 413)
    problem(postgres_api.post("/products", content=b"{}", headers=auth), 415)
    body = problem(postgres_api.post("/products", json={**LAMP, "quantity": -1}, headers=auth), 422)
    assert body["errors"] == [{"field": "quantity", "message": "must be between 0 and 2147483647"}]
    assert postgres_api.get("/products").json()["items"] == [existing]


def test_db_check_turns_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://cme:pw@127.0.0.1:1/cme", "API_KEY": API_KEY}
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _):
        response = httpx.get(f"{base_url}/db-check", timeout=5)
        problem(response, 503)
        assert response.headers["retry-after"] == "2"
        assert response.elapsed.total_seconds() < 2.5
        write = httpx.post(f"{base_url}/products", json=LAMP, headers={"X-API-Key": API_KEY})
        problem(write, 503)


def test_a_product_on_the_embedded_default_survives_a_restart(tmp_path: Path) -> None:
    env = {"API_KEY": API_KEY}
    migrated = subprocess.run(
        [CME, "migrate"],
        cwd=tmp_path,
        # PYTHONPATH passes through, so a checkout run against a shared venv migrates with
        # its own code (its own schema head), as the server it then starts runs it.
        env={"PATH": "/usr/bin:/bin", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}},
        capture_output=True,
        timeout=60,
    )
    assert migrated.returncode == 0
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, process):
        created = httpx.post(f"{base_url}/products", json=LAMP, headers={"X-API-Key": API_KEY})
        assert created.status_code == 201
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _):
        assert httpx.get(f"{base_url}{created.headers['location']}").json() == created.json()
    assert (tmp_path / "var" / "cme.db").exists()
