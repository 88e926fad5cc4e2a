"""Attacks on a real `cme serve` (uvicorn, httptools) over PostgreSQL, and what leaks: nothing."""

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import jwt
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.integration.server import running_cme

API_KEY = "e2e-security-key-0123456789"
JWT_SECRET = "e2e-jwt-secret-0123456789abcdef0123"
METRICS_TOKEN = "e2e-metrics-token-0123456789"
DB_PASSWORD = "e2e-db-password-0123456789"
ISSUER, AUDIENCE = "https://issuer.e2e", "cme-e2e"
LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.99", "quantity": 4}


def token(secret: str = JWT_SECRET, **claims: object) -> str:
    now = int(time.time())
    base = {"sub": "e2e-user", "scope": "products:write", "exp": now + 300}
    payload = {**base, "iss": ISSUER, "aud": AUDIENCE, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


class Service:
    def __init__(self, base_url: str, database_url: str, log: Path) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.port = int(base_url.rsplit(":", 1)[1])
        self.database_url = database_url
        self.log = log

    def products_in_database(self) -> int:
        with psycopg.connect(self.database_url) as connection:
            row = connection.execute("SELECT count(*) FROM products").fetchone()
        assert row is not None
        count: int = row[0]
        return count

    def raw(self, request: bytes) -> bytes:
        """Bytes on a socket, for requests no well-behaved client would send."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as connection:
            connection.sendall(request)
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b"connection: close" not in answer.lower():
                    break
        return answer


@pytest.fixture
def service(empty_postgres_url: str, tmp_path: Path) -> Iterator[Service]:
    # The test server trusts loopback, so the password is never checked, only carried.
    database_url = make_url(empty_postgres_url).set(password=DB_PASSWORD)
    url = database_url.render_as_string(hide_password=False)
    env = {
        "DATABASE_URL": url,
        "API_KEYS": f"ci:{API_KEY}",
        "JWT_SECRET": JWT_SECRET,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "METRICS_TOKEN": METRICS_TOKEN,
        "LOG_LEVEL": "DEBUG",
    }
    log = tmp_path / "cme.log"
    with running_cme(env, tmp_path, log) as (base_url, _):
        served = Service(base_url, url, log)
        yield served
        served.http.close()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_token_attacks_are_refused_over_real_http_and_nothing_is_written(service: Service) -> None:
    attacks = {
        "forged signature": (bearer(token(secret="x" * 40)), 401),
        "alg none": (bearer(jwt.encode({"sub": "x"}, None, algorithm="none")), 401),
        "expired": (bearer(token(exp=int(time.time()) - 600)), 401),
        "wrong audience": (bearer(token(aud="other")), 401),
        "missing scope": (bearer(token(scope="products:read")), 403),
    }
    statuses = {
        name: service.http.post("/products", json=LAMP, headers=headers).status_code
        for name, (headers, _) in attacks.items()
    }
    assert statuses == {name: status for name, (_, status) in attacks.items()}
    assert service.products_in_database() == 0


def test_an_oversized_request_head_is_431_over_real_http_and_nothing_is_written(
    service: Service,
) -> None:
    body = b'{"sku": "BIG-1", "name": "n", "price": "1", "quantity": 1}'
    request = (
        b"POST /products HTTP/1.1\r\nHost: t\r\nX-API-Key: " + API_KEY.encode() + b"\r\n"
        b"X-Padding: " + b"a" * 32 * 1024 + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert service.raw(request).startswith(b"HTTP/1.1 431 ")
    assert service.products_in_database() == 0


def test_a_request_id_with_a_bare_cr_is_refused_before_it_reaches_the_app(service: Service) -> None:
    request = (
        b"POST /products HTTP/1.1\r\nHost: t\r\nX-API-Key: " + API_KEY.encode() + b"\r\n"
        b"X-Request-ID: abc\rSet-Cookie: session=evil\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    answer = service.raw(request)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"set-cookie" not in answer.lower()
    assert service.products_in_database() == 0


def test_responses_carry_security_headers_and_no_server_version(service: Service) -> None:
    for response in (service.http.get("/health"), service.http.post("/products", json=LAMP)):
        assert "server" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert service.http.get("/metrics").status_code == 401


def test_credentials_never_reach_logs_errors_or_metrics(service: Service) -> None:
    valid = token()
    seen: list[str] = []
    for headers in (
        {"X-API-Key": API_KEY},
        {"X-API-Key": API_KEY + "-wrong"},
        bearer(valid),
        bearer(valid + "tampered"),
        bearer(token(exp=int(time.time()) - 600)),
        {"X-API-Key": API_KEY, **bearer(valid)},
    ):
        response = service.http.post("/products", json={**LAMP, "sku": "LEAK"}, headers=headers)
        seen.append(response.text + str(response.headers))
    metrics = service.http.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert metrics.status_code == 200
    seen.append(metrics.text)
    time.sleep(0.2)  # let the access log lines reach the file
    logged = service.log.read_text()
    assert "POST /products" in logged  # the log did capture these requests
    for secret in (API_KEY, valid, JWT_SECRET, METRICS_TOKEN, DB_PASSWORD):
        assert secret not in logged
        assert all(secret not in text for text in seen)
