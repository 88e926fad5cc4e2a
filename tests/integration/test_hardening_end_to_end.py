"""Issue 14's forged inputs against a real `cme serve`: each gets its status, none a 500."""

import base64
import gzip
import hashlib
import hmac
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import jwt
import orjson
import pytest

from tests.integration.server import CME, running_cme

API_KEY = "e2e-hardening-key-0123456789"
JWT_SECRET = "e2e-hardening-jwt-secret-0123456789"
CURSOR_SECRET = "e2e-hardening-cursor-secret"
LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.99", "quantity": 4}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(params=["postgresql", "sqlite"])
def base_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    env = {"API_KEY": API_KEY, "JWT_SECRET": JWT_SECRET, "CURSOR_SECRET": CURSOR_SECRET}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("empty_postgres_url")
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cme.db'}"
        migrated = subprocess.run(
            [CME, "migrate"],
            env={**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
        assert migrated.returncode == 0, migrated.stderr
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (url, _):
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10, headers={"X-API-Key": API_KEY}) as http:
        yield http


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    return body


def signed_cursor(fields: object) -> str:
    payload = orjson.dumps(fields)
    key = hashlib.sha256(CURSOR_SECRET.encode()).digest()
    signature = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in (payload, signature))


def test_every_forged_input_of_the_issue_gets_its_status_and_never_a_500(
    client: httpx.Client, base_url: str
) -> None:
    created = client.post("/products", json=LAMP)
    assert created.status_code == 201
    url = f"/products/{created.json()['id']}"

    # Row 2: a cursor signed with the real key but holding values no product has.
    for sort, value in [
        ("price", "NaN"),
        ("price", "1e30"),
        ("created_at", "0001-01-01T00:00:00+00:00"),
        ("created_at", 1767225600),
    ]:
        cursor = signed_cursor([sort, "asc", value, "0" * 32])
        problem(client.get("/products", params={"sort": sort, "cursor": cursor}), 400)
    problem(
        client.get(
            "/products", params={"sort": "name", "cursor": signed_cursor(["name", "asc", "a", 7])}
        ),
        400,
    )

    # Row 3: a lone surrogate in a text field, on every write.
    surrogate = b'{"sku": "S-1", "name": "\\ud800", "price": "1", "quantity": 1}'
    problem(client.post("/products", content=surrogate, headers=JSON), 422)
    problem(client.put(url, content=surrogate, headers=JSON), 422)
    problem(client.patch(url, content=b'{"description": "\\udfff"}', headers=JSON), 422)

    # Rows 5 and 9: versions past the column, weak tags and other spellings are 412.
    for tag in ['"v2147483648"', '"v9223372036854775808"', 'W/"v1"', '"v01"']:
        problem(client.put(url, json=LAMP, headers={"If-Match": tag}), 412)
        problem(client.delete(url, headers={"If-Match": tag}), 412)

    # Row 8: only ASCII digits, with the documented message.
    for limit in ["\u0661\u0660", "\u00b2"]:
        errors = problem(client.get("/products", params={"limit": limit}), 422)["errors"]
        assert errors == [{"field": "limit", "message": "must be an integer from 1 to 100"}]

    # Also seen: gzip, UTF-16, other id spellings, the Host header, invisible names.
    packed = gzip.compress(orjson.dumps(LAMP))
    problem(
        client.post("/products", content=packed, headers={**JSON, "Content-Encoding": "gzip"}), 415
    )
    utf16 = orjson.dumps({**LAMP, "sku": "U16"}).decode().encode("utf-16")
    problem(client.post("/products", content=utf16, headers=JSON), 400)
    product_id = created.json()["id"]
    for other in [
        f"{{{product_id}}}",
        f"urn:uuid:{product_id}",
        f"+{product_id}",
        product_id.replace("-", ""),
    ]:
        problem(client.get(f"/products/{other}"), 404)
    problem(client.post("/products", json={**LAMP, "sku": "ZW", "name": "\u200b"}), 422)
    with socket.create_connection(("127.0.0.1", int(base_url.rsplit(":", 1)[1])), timeout=5) as raw:
        raw.sendall(b"GET /products/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        time.sleep(0.2)
        answer = raw.recv(65536)
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert b"evil.example" not in answer

    # Nothing above changed the product.
    assert client.get(url).json()["version"] == 1


def test_a_token_whose_subject_names_an_api_key_cannot_replay_that_keys_creates(
    client: httpx.Client,
) -> None:
    keyed = client.post("/products", json=LAMP, headers={"Idempotency-Key": "order-1"})
    assert keyed.status_code == 201
    token = jwt.encode(
        {"sub": "api-key:default", "scope": "products:write", "exp": int(time.time()) + 300},
        JWT_SECRET,
        algorithm="HS256",
    )
    forged = httpx.post(
        f"{client.base_url}/products",
        json=LAMP,
        headers={"Idempotency-Key": "order-1", "Authorization": f"Bearer {token}"},
        timeout=10,
    )
    # Its own namespace: no replay of the key's product, so the same sku is a plain conflict.
    assert "idempotent-replayed" not in forged.headers
    assert problem(forged, 409)["type"] == "urn:cme:problem:duplicate-sku"
