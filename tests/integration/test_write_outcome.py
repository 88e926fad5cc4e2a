"""A write whose answer is lost after PostgreSQL applied it: the 503 says so, and only an
Idempotency-Key retry is safe (it returns the original product)."""

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy.engine import make_url

from tests.integration.cutting_proxy import CuttingProxy
from tests.integration.server import running_cme

API_KEY = "outcome-key-0123456789abcdef"
AUTH = {"X-API-Key": API_KEY}
LAMP = {"sku": "CUT-1", "name": "Desk lamp", "price": "19.99", "quantity": 4}


@pytest.fixture
def proxy() -> Iterator[CuttingProxy]:
    with CuttingProxy(upstream_port=5432).running() as running:
        yield running


@pytest.fixture
def api(empty_postgres_url: str, proxy: CuttingProxy, tmp_path: Path) -> Iterator[httpx.Client]:
    url = make_url(empty_postgres_url).set(host="127.0.0.1", port=proxy.port)
    env = {"DATABASE_URL": url.render_as_string(hide_password=False), "API_KEY": API_KEY}
    with (
        running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _),
        httpx.Client(base_url=base_url, timeout=10) as client,
    ):
        yield client


def test_a_create_whose_commit_answer_is_lost_is_503_and_its_idempotent_retry_returns_it(
    api: httpx.Client, proxy: CuttingProxy
) -> None:
    headers = {**AUTH, "Idempotency-Key": "order-1042"}
    proxy.arm(b"COMMIT")
    lost = api.post("/products", json=LAMP, headers=headers)
    assert proxy.cuts == 1
    assert lost.status_code == 503, lost.text
    assert lost.headers["retry-after"]
    assert "may or may not have been applied" in lost.json()["detail"]
    assert "Idempotency-Key" in lost.json()["detail"]

    retried = api.post("/products", json=LAMP, headers=headers)
    assert retried.status_code == 201, retried.text
    plain = api.post("/products", json=LAMP, headers=AUTH)
    assert plain.status_code == 409
    listed = api.get("/products").json()["items"]
    assert [p["id"] for p in listed] == [retried.json()["id"]]


def test_a_single_statement_write_whose_answer_is_lost_is_503_saying_its_fate_is_unknown(
    api: httpx.Client, proxy: CuttingProxy
) -> None:
    proxy.arm(b"INSERT INTO products")
    lost = api.post("/products", json=LAMP, headers=AUTH)
    assert proxy.cuts == 1
    assert lost.status_code == 503, lost.text
    assert "may or may not have been applied" in lost.json()["detail"]
    assert [p["sku"] for p in api.get("/products").json()["items"]] == ["CUT-1"]


def test_a_read_whose_connection_breaks_is_a_plain_503(
    api: httpx.Client, proxy: CuttingProxy
) -> None:
    proxy.arm(b"FROM products")
    broken = api.get("/products")
    assert broken.status_code == 503, broken.text
    assert broken.json()["detail"] == "the database is not reachable"
    assert api.get("/products").status_code == 200
