"""Without CURSOR_SECRET, cursors are signed with a random key the database keeps."""

import base64
import hashlib
import hmac

import orjson
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.settings import Settings

from .conftest import API_KEY

URL = "sqlite:///var/cme.db"


def app_on(memory: InMemoryDatabase, **settings: str) -> TestClient:
    container = Container(settings=Settings(database_url=URL, api_keys=(API_KEY,), **settings))
    container.database.override(providers.Object(memory))
    return TestClient(create_app(container), raise_server_exceptions=False)


def fill(client: TestClient, count: int) -> None:
    for n in range(count):
        body = {"sku": f"K-{n}", "name": "Lamp", "price": "1.00", "quantity": 1}
        assert (
            client.post("/products", json=body, headers={"X-API-Key": API_KEY}).status_code == 201
        )


def forged(key: bytes) -> str:
    payload = orjson.dumps(["created_at", "asc", "2026-01-01T00:00:00+00:00", "0" * 32])
    signature = hmac.new(key, payload, hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(payload)}.{b64(signature)}"


def test_replicas_sharing_a_database_accept_each_others_cursors() -> None:
    memory = InMemoryDatabase()
    with app_on(memory) as first, app_on(memory) as second:
        fill(first, 3)
        cursor = first.get("/products?limit=2").json()["next_cursor"]
        page = second.get("/products", params={"limit": 2, "cursor": cursor})
        assert page.status_code == 200, page.text
        assert [p["sku"] for p in page.json()["items"]] == ["K-2"]


def test_a_cursor_signed_with_the_old_url_derived_key_is_refused() -> None:
    old_key = hashlib.sha256(f"cme-cursor-v1:{URL}".encode()).digest()
    with app_on(InMemoryDatabase()) as client:
        response = client.get("/products", params={"cursor": forged(old_key)})
        assert response.status_code == 400
        assert response.json()["type"].endswith("bad-cursor")


def test_each_database_has_its_own_key() -> None:
    with app_on(InMemoryDatabase()) as first, app_on(InMemoryDatabase()) as second:
        fill(first, 3)
        cursor = first.get("/products?limit=2").json()["next_cursor"]
        assert second.get("/products", params={"cursor": cursor}).status_code == 400


def test_a_configured_cursor_secret_signs_instead() -> None:
    key = hashlib.sha256(b"configured-secret-0123456789").digest()
    with app_on(InMemoryDatabase(), cursor_secret="configured-secret-0123456789") as client:
        assert client.get("/products", params={"cursor": forged(key)}).status_code == 200
