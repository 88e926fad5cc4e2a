"""Every error the manual's table lists is a body that the OpenAPI Problem schema accepts."""

import asyncio
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from cme_entrypoints.http import protocol
from cme_entrypoints.http.docs import openapi_document
from cme_entrypoints.http.head_limit import MAX_HEAD_BYTES
from tests.unit.test_http_api import UnreachableDatabase
from tests.unit.test_jwt import hs256
from tests.unit.test_security import API_KEY, LAMP, answered, build_app, connection

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = openapi_document()
KEY = {"X-API-Key": API_KEY}
JSON = {**KEY, "Content-Type": "application/json"}


def validator(schema_name: str) -> Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": DOCUMENT["components"]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def readme_error_statuses() -> set[int]:
    section = (ROOT / "docs" / "api" / "errors.md").read_text().split("## Every status", 1)[1]
    return {int(s) for s in re.findall(r"^\|[^|]+\| (\d{3})\b", section, flags=re.MULTILINE)}


@pytest.fixture
def app_client(memory: InMemoryDatabase) -> Iterator[TestClient]:
    with TestClient(build_app(memory), raise_server_exceptions=False) as client:
        yield client


def created(client: TestClient) -> str:
    response = client.post("/products", json=LAMP, headers=KEY)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def unavailable(memory: InMemoryDatabase) -> Any:
    with TestClient(build_app(UnreachableDatabase()), raise_server_exceptions=False) as client:
        return client.get("/products")


def rate_limited(memory: InMemoryDatabase) -> Any:
    with TestClient(
        build_app(memory, RATE_LIMIT_READS="1/60"), raise_server_exceptions=False
    ) as client:
        client.get("/products")
        return client.get("/products")


def pruned_past(client: TestClient, memory: InMemoryDatabase) -> Any:
    """A feed cursor taken before an event that retention has since deleted."""
    cursor = client.get("/products/changes", params={"cursor": "latest"}).json()["next_cursor"]
    created(client)
    asyncio.run(memory.change_feed().prune(datetime.now(UTC) + timedelta(days=1)))
    return client.get("/products/changes", params={"cursor": cursor})


REQUESTS: dict[int, Callable[[TestClient, InMemoryDatabase], Any]] = {
    400: lambda c, m: c.post("/products", content=b"{", headers=JSON),
    401: lambda c, m: c.post("/products", json=LAMP),
    403: lambda c, m: c.post(
        "/products", json=LAMP, headers={"Authorization": f"Bearer {hs256(scope='products:read')}"}
    ),
    404: lambda c, m: c.get("/products/not-a-uuid"),
    405: lambda c, m: c.post("/health"),
    409: lambda c, m: (created(c), c.post("/products", json=LAMP, headers=KEY))[1],
    412: lambda c, m: c.put(
        f"/products/{created(c)}", json=LAMP, headers={**KEY, "If-Match": '"v9"'}
    ),
    410: pruned_past,
    413: lambda c, m: c.post("/products", content=b" " * (65 * 1024), headers=JSON),
    414: lambda c, m: c.get("/products", params={"q": "a" * 3000}),
    415: lambda c, m: c.post(
        "/products", content=b"{}", headers={**KEY, "Content-Type": "text/plain"}
    ),
    422: lambda c, m: c.post("/products", json={**LAMP, "price": "1.234"}, headers=KEY),
    429: lambda c, m: rate_limited(m),
    503: lambda c, m: unavailable(m),
}
# Answered by the HTTP protocol before any route runs: checked by the tests below.
PROTOCOL_STATUSES = {408, 431}


def test_the_walk_covers_every_status_of_the_readme_error_table() -> None:
    assert readme_error_statuses() == {*REQUESTS, *PROTOCOL_STATUSES}


@pytest.mark.parametrize("status", sorted(REQUESTS))
def test_each_error_status_is_a_valid_problem_in_the_urn_namespace(
    status: int, app_client: TestClient, memory: InMemoryDatabase
) -> None:
    response = REQUESTS[status](app_client, memory)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    validator("Problem").validate(body)
    assert body["status"] == status
    assert body["type"].startswith("urn:cme:problem:")
    assert body["instance"] == response.url.path


@pytest.mark.anyio
async def test_a_431_is_a_valid_problem_too(memory: InMemoryDatabase) -> None:
    protocol, transport = connection(build_app(memory))
    protocol.data_received(b"GET /products HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD_BYTES)
    answer = await answered(transport)
    body = answer.partition(b"\r\n\r\n")[2]
    assert answer.startswith(b"HTTP/1.1 431 ")
    problem = orjson.loads(body)
    validator("Problem").validate(problem)
    assert problem["type"] == "urn:cme:problem:headers-too-large"


@pytest.mark.parametrize("answer", [protocol._HEAD_TIMEOUT, protocol._BODY_TIMEOUT])
def test_a_408_is_a_valid_problem_too(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"content-type: application/problem+json" in head
    problem = orjson.loads(body)
    validator("Problem").validate(problem)
    assert problem["type"] == "urn:cme:problem:timeout"


def test_the_problem_schema_rejects_a_body_without_a_type() -> None:
    assert not validator("Problem").is_valid({"title": "x", "status": 400, "detail": "y"})


def test_every_documented_error_response_is_problem_json() -> None:
    responses = DOCUMENT["components"]["responses"]
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                resolved = responses[response["$ref"].rsplit("/", 1)[1]]
                media = resolved["content"]["application/problem+json"]
                assert media["schema"] == {"$ref": "#/components/schemas/Problem"}, (path, status)
                validator("Problem").validate(media["example"])
                assert media["example"]["status"] == int(status), (path, method, status)
