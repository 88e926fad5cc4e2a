"""The security suite: one test per attack, each with its exact status and nothing written."""

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from cme_adapters.memory import InMemoryDatabase
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.http.head_limit import MAX_HEAD_BYTES, BoundedHttpToolsProtocol
from cme_entrypoints.settings import Settings
from tests.unit.test_jwt import (
    AUDIENCE,
    ISSUER,
    SECRET,
    forged_hs256,
    hs256,
    public_pem,
    rsa_key,
    signed,
    unsigned,
)

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "security-test-key-0123456789"
LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.99", "quantity": 4}
JWT_ENV = {"JWT_SECRET": SECRET.decode(), "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE}
BASE_ENV = {"DATABASE_URL": "sqlite://", "API_KEYS": f"ci:{API_KEY}", **JWT_ENV}


def build_app(memory: InMemoryDatabase, **env: str) -> Starlette:
    container = Container(settings=Settings.from_env({**BASE_ENV, **env}))
    container.database.override(providers.Object(memory))
    return create_app(container)


@pytest.fixture
def client(memory: InMemoryDatabase) -> Iterator[TestClient]:
    with TestClient(build_app(memory), raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(response: Any, status: int, memory: InMemoryDatabase) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert memory.store.products == {}
    assert memory.store.idempotency == {}
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("make_token", "detail"),
    [
        (lambda: hs256(secret=b"forged-secret-forged-secret-forged!"), "the token is not valid"),
        (lambda: unsigned(), "the token's algorithm is not accepted"),
        (lambda: hs256(exp=int(time.time()) - 3600), "the token has expired"),
        (lambda: hs256(nbf=int(time.time()) + 3600), "the token is not valid yet"),
        (lambda: hs256(iss="https://evil.test"), "the token's issuer is not accepted"),
        (lambda: hs256(aud="someone-else"), "the token's audience is not accepted"),
    ],
    ids=["forged-signature", "alg-none", "expired", "not-yet-valid", "wrong-issuer", "wrong-aud"],
)
def test_a_bad_bearer_token_is_401_invalid_token_and_writes_nothing(
    client: TestClient, memory: InMemoryDatabase, make_token: Callable[[], str], detail: str
) -> None:
    # Minted when the test runs: tokens made at collection would age while the suite runs.
    response = client.post("/products", json=LAMP, headers=bearer(make_token()))
    assert refused(response, 401, memory)["detail"] == detail
    assert response.headers["www-authenticate"].endswith(
        'Bearer realm="cme", error="invalid_token"'
    )


def test_an_hs256_token_signed_with_the_rsa_public_key_is_401_when_rs256_is_pinned(
    memory: InMemoryDatabase, tmp_path: Path
) -> None:
    pem = tmp_path / "public.pem"
    pem.write_bytes(public_pem(rsa_key()))
    app = build_app(memory, JWT_SECRET="", JWT_PUBLIC_KEY_FILE=str(pem), JWT_ALGORITHMS="RS256")
    with TestClient(app) as rs_client:
        forged = rs_client.post(
            "/products", json=LAMP, headers=bearer(forged_hs256(pem.read_bytes()))
        )
        refused(forged, 401, memory)
        genuine = rs_client.post("/products", json=LAMP, headers=bearer(signed(rsa_key())))
    assert genuine.status_code == 201


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_valid_token_without_the_write_scope_is_403_for_every_write(
    client: TestClient, memory: InMemoryDatabase, method: str
) -> None:
    url = "/products" if method == "POST" else "/products/00000000-0000-0000-0000-000000000001"
    headers = {**bearer(hs256(scope="products:read")), "Content-Type": "application/json"}
    response = client.request(method, url, content=json.dumps(LAMP), headers=headers)
    assert (
        refused(response, 403, memory)["detail"] == "this action needs the 'products:write' scope"
    )


def test_a_valid_token_with_the_write_scope_creates_and_owns_its_idempotency_key(
    client: TestClient, memory: InMemoryDatabase
) -> None:
    headers = {**bearer(hs256(sub="carol")), "Idempotency-Key": "k-1"}
    assert client.post("/products", json=LAMP, headers=headers).status_code == 201
    assert [owner for owner, _ in memory.store.idempotency] == ["jwt:carol"]


def test_an_oversized_body_from_a_valid_caller_is_413_and_writes_nothing(
    client: TestClient, memory: InMemoryDatabase
) -> None:
    huge = {**LAMP, "description": "x" * (65 * 1024)}
    refused(client.post("/products", json=huge, headers=bearer(hs256())), 413, memory)


def test_json_nested_too_deep_from_a_valid_caller_is_400_and_writes_nothing(
    client: TestClient, memory: InMemoryDatabase
) -> None:
    deep = b'{"sku": "A", "x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    refused(client.post("/products", content=deep, headers=headers), 400, memory)


def test_a_query_over_2048_bytes_is_414(client: TestClient, memory: InMemoryDatabase) -> None:
    response = client.get("/products?q=" + "a" * 2048)
    assert refused(response, 414, memory)["type"] == "urn:cme:problem:too-long"
    assert client.get("/products?q=" + "a" * 100).status_code == 200


def test_both_an_api_key_and_a_token_at_once_are_401(
    client: TestClient, memory: InMemoryDatabase
) -> None:
    headers = {"X-API-Key": API_KEY, **bearer(hs256())}
    refused(client.post("/products", json=LAMP, headers=headers), 401, memory)


def test_a_bearer_token_is_401_when_jwt_is_not_configured(memory: InMemoryDatabase) -> None:
    app = build_app(memory, JWT_SECRET="", JWT_ISSUER="", JWT_AUDIENCE="")
    with TestClient(app) as keys_only:
        response = keys_only.post("/products", json=LAMP, headers=bearer(hs256()))
        assert keys_only.post("/products", json=LAMP, headers={"X-API-Key": API_KEY}).is_success
    assert response.status_code == 401
    assert response.json()["detail"] == "bearer tokens are not accepted: JWT is not configured"


def test_two_api_keys_work_at_once_so_a_key_rotates_without_downtime(
    memory: InMemoryDatabase,
) -> None:
    old, new = "old-key-0123456789abc", "new-key-0123456789abc"
    with TestClient(build_app(memory, API_KEYS=f"ci:{old},ci:{new}")) as rotating:
        for n, key in enumerate((old, new)):
            created = rotating.post(
                "/products", json={**LAMP, "sku": f"S{n}"}, headers={"X-API-Key": key}
            )
            assert created.status_code == 201
        assert (
            rotating.post("/products", json=LAMP, headers={"X-API-Key": API_KEY}).status_code == 401
        )


def test_read_scope_when_required_makes_reads_need_credentials(memory: InMemoryDatabase) -> None:
    with TestClient(build_app(memory, REQUIRE_READ_SCOPE="true")) as strict:
        assert strict.get("/products").status_code == 401
        assert strict.get("/products/not-a-uuid").status_code == 401
        assert (
            strict.get("/products", headers=bearer(hs256(scope="products:write"))).status_code
            == 403
        )
        assert (
            strict.get("/products", headers=bearer(hs256(scope="products:read"))).status_code == 200
        )
        assert strict.get("/products", headers={"X-API-Key": API_KEY}).status_code == 200
        assert strict.get("/health").status_code == 200


def test_the_read_guard_holds_behind_a_proxy_path_prefix(memory: InMemoryDatabase) -> None:
    app = build_app(memory, REQUIRE_READ_SCOPE="true")
    with TestClient(app, root_path="/api") as proxied:
        assert proxied.get("/api/products").status_code == 401
        assert proxied.get("/api/products", headers={"X-API-Key": API_KEY}).status_code == 200


def test_the_authenticated_subject_is_left_in_the_scope_state_for_the_access_log(
    memory: InMemoryDatabase,
) -> None:
    app = build_app(memory)
    seen: dict[str, Any] = {}

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)
        seen.update(scope.get("state", {}))

    with TestClient(spy) as spied:
        spied.post("/products", json=LAMP, headers={"X-API-Key": API_KEY})
    assert seen["principal_subject"] == "api-key:ci"


@pytest.mark.anyio
async def test_a_request_id_carrying_crlf_is_replaced_not_echoed(memory: InMemoryDatabase) -> None:
    injected = b"abc\r\nSet-Cookie: session=evil"
    messages = await call(build_app(memory), "POST", "/products", [(b"x-request-id", injected)])
    start = messages[0]
    assert start["status"] == 401
    assert all(b"evil" not in value for _, value in start["headers"])
    assert dict(start["headers"])[b"x-request-id"] != injected
    assert memory.store.products == {}


async def call(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> list[Message]:
    """One request straight into the ASGI app: header bytes no HTTP client would send."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def security_headers(response: Any) -> dict[str, str]:
    names = ("x-content-type-options", "referrer-policy", "x-frame-options")
    return {name: response.headers[name] for name in names}


EXPECTED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    responses = [
        client.get("/health"),
        client.get("/nowhere"),
        client.post("/products", json=LAMP),
        client.post("/products", json=LAMP, headers={"X-API-Key": API_KEY}),
        client.get("/products?q=" + "a" * 3000),
    ]
    assert [r.status_code for r in responses] == [200, 404, 401, 201, 414]
    for response in responses:
        assert security_headers(response) == EXPECTED
        assert response.headers["content-security-policy"] == API_CSP


def test_an_unexpected_500_carries_the_security_headers_too(memory: InMemoryDatabase) -> None:
    class BrokenDatabase(InMemoryDatabase):
        def unit_of_work(self) -> Any:
            raise RuntimeError("bug")

    with TestClient(build_app(BrokenDatabase()), raise_server_exceptions=False) as broken:
        response = broken.get("/products")
    assert response.status_code == 500
    assert security_headers(response) == EXPECTED
    assert response.headers["cache-control"] == "no-store"
    assert len(response.headers["x-request-id"]) == 32  # the id its log lines carry


def test_the_docs_page_alone_may_load_its_own_scripts_and_styles(client: TestClient) -> None:
    csp = client.get("/docs").headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert client.get("/openapi.json").headers["content-security-policy"] == API_CSP


def test_errors_and_authenticated_responses_are_no_store_and_public_reads_are_not(
    client: TestClient,
) -> None:
    created = client.post("/products", json=LAMP, headers={"X-API-Key": API_KEY})
    unauthorized = client.post("/products", json=LAMP)
    assert created.headers.get_list("cache-control") == ["no-store"]
    assert unauthorized.headers.get_list("cache-control") == ["no-store"]
    assert "cache-control" not in client.get("/products").headers


def test_cors_is_off_by_default(client: TestClient) -> None:
    origin = {"Origin": "https://app.test"}
    assert "access-control-allow-origin" not in client.get("/products", headers=origin).headers
    preflight = client.options(
        "/products", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_only_the_listed_origins_and_preflight_works(memory: InMemoryDatabase) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }
    with TestClient(build_app(memory, CORS_ALLOW_ORIGINS="https://app.test")) as cors:
        allowed = cors.options("/products", headers={"Origin": "https://app.test", **preflight})
        denied = cors.options("/products", headers={"Origin": "https://evil.test", **preflight})
        unauthorized = cors.post("/products", json=LAMP, headers={"Origin": "https://app.test"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.test"
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    assert unauthorized.status_code == 401  # readable by the page, so it can ask for credentials
    assert unauthorized.headers["access-control-allow-origin"] == "https://app.test"


def test_metrics_need_the_metrics_token_when_one_is_set(memory: InMemoryDatabase) -> None:
    token = "metrics-token-0123456789"
    with TestClient(build_app(memory, METRICS_TOKEN=token)) as guarded:
        missing, wrong = guarded.get("/metrics"), guarded.get("/metrics", headers=bearer("x" * 24))
        granted = guarded.get("/metrics", headers=bearer(token))
    assert (missing.status_code, wrong.status_code, granted.status_code) == (401, 401, 200)
    assert missing.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert granted.headers["cache-control"] == "no-store"
    with TestClient(build_app(memory)) as open_metrics:
        assert open_metrics.get("/metrics").status_code == 200


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connection(app: Starlette) -> tuple[BoundedHttpToolsProtocol, FakeTransport]:
    config = Config(app=app, http=BoundedHttpToolsProtocol, lifespan="off", server_header=False)
    config.load()
    protocol = BoundedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


async def answered(transport: FakeTransport) -> bytes:
    for _ in range(200):
        if b"\r\n\r\n" in transport.written:
            break
        await asyncio.sleep(0.005)
    return bytes(transport.written)


REQUEST = b"POST /products HTTP/1.1\r\nHost: t\r\nX-API-Key: " + API_KEY.encode()
BODY = json.dumps(LAMP).encode()
TAIL = b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


@pytest.mark.anyio
async def test_a_request_head_over_the_limit_is_431_and_writes_nothing(
    memory: InMemoryDatabase,
) -> None:
    protocol, transport = connection(build_app(memory))
    protocol.data_received(REQUEST + b"\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + TAIL)
    answer = await answered(transport)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"urn:cme:problem:headers-too-large" in answer
    assert transport.closed
    assert memory.store.products == {}


@pytest.mark.anyio
async def test_a_head_that_never_ends_is_cut_off_at_the_limit(memory: InMemoryDatabase) -> None:
    protocol, transport = connection(build_app(memory))
    protocol.data_received(REQUEST + b"\r\nX-Big: ")
    chunks = 0
    while not transport.closed and chunks < 100:
        protocol.data_received(b"a" * 4096)
        chunks += 1
    assert transport.written.startswith(b"HTTP/1.1 431 ")
    assert chunks * 4096 <= MAX_HEAD_BYTES + 4096


@pytest.mark.anyio
async def test_a_head_within_the_limit_is_served(memory: InMemoryDatabase) -> None:
    protocol, transport = connection(build_app(memory))
    protocol.data_received(REQUEST + b"\r\nX-Fine: " + b"a" * (MAX_HEAD_BYTES // 2) + TAIL)
    assert (await answered(transport)).startswith(b"HTTP/1.1 201 ")
    assert len(memory.store.products) == 1


BANDIT = Path(sys.executable).with_name("bandit")  # a dev dependency: `make unit` needs no tools


def bandit(target: Path) -> list[dict[str, Any]]:
    if not BANDIT.exists():
        pytest.fail("bandit is missing: install the dev extras (`make unit` does)")
    # B101 (assert) is allowed here as ruff's S101 is in pyproject.toml: the asserts only
    # narrow types for mypy, and nothing runs under python -O.
    command = [str(BANDIT), "-r", str(target), "-q", "--skip", "B101", "-f", "json"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    report = json.loads(result.stdout)
    assert report["errors"] == []
    found: list[dict[str, Any]] = report["results"]
    return found


def test_bandit_finds_nothing_in_src() -> None:
    assert [(r["test_id"], r["filename"], r["line_number"]) for r in bandit(ROOT / "src")] == []


def test_bandit_flags_a_planted_bad_file(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "import subprocess\n"
        "def run(command: str) -> None:\n"
        "    subprocess.call(command, shell=True)\n"
        "PASSWORD = 'hunter2'\n"
    )
    assert {r["test_id"] for r in bandit(tmp_path)} >= {"B602", "B105"}


def test_every_nosec_in_src_names_its_check_and_says_why() -> None:
    lines = [
        line
        for path in (ROOT / "src").rglob("*.py")
        for line in path.read_text().splitlines()
        if "nosec" in line
    ]
    assert lines
    for line in lines:
        assert re.search(r"# nosec B\d{3}(, B\d{3})*  # \w", line), line
