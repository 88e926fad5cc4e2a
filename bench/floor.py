"""The floor: the least work a Python server can do for the benchmark's requests.

A bare ASGI callable (no framework, no validation, no logging, no metrics) on the same uvicorn
settings as `cme serve` (httptools, uvloop, N workers), the same SQL on the same tables
(bench/sql.py, shared with the FastAPI reference) through raw psycopg 3 async connections in a
tiny hand-made pool (one per worker, autocommit, so a single statement is a single round trip).
Responses have the same bodies and headers as the service's, so wrk measures the same bytes.

    python bench/floor.py --port 5100 --workers 2      (DATABASE_URL names the database)
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from sql import FIRST_PAGE, GET, INSERT, NEXT_PAGE, UPDATE_ANY, UPDATE_AT_VERSION, folded, uuid7

# The service's static security headers: constant bytes, so the same response size on the wire.
SECURITY = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
JSON = [(b"content-type", b"application/json"), *SECURITY]
PROBLEM = [(b"content-type", b"application/problem+json"), *SECURITY]
HEALTH = orjson.dumps({"status": "ok"})
CURSOR_KEY = hashlib.sha256(os.environ.get("CURSOR_SECRET", "floor").encode()).digest()


class Pool:
    """A fixed set of connections handed out through a queue: nothing more."""

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size = url, size
        self.idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.idle.put_nowait(await psycopg.AsyncConnection.connect(self.url, autocommit=True))

    async def fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        connection = await self.idle.get()
        try:
            cursor = await connection.execute(sql, params)
            return await cursor.fetchall() if cursor.description else []
        finally:
            self.idle.put_nowait(connection)

    async def close(self) -> None:
        while not self.idle.empty():
            await self.idle.get_nowait().close()


pool = Pool(os.environ.get("DATABASE_URL", ""), int(os.environ.get("DB_POOL_SIZE", "5")))


def product(row: tuple[Any, ...]) -> dict[str, Any]:
    id_, sku, name, description, cents, quantity, created, updated, version = row
    return {
        "id": id_,
        "sku": sku,
        "name": name,
        "description": description,
        "price": f"{cents // 100}.{cents % 100:02d}",
        "quantity": quantity,
        "created_at": created.astimezone(UTC),
        "updated_at": updated.astimezone(UTC),
        "version": version,
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _cursor(row: tuple[Any, ...]) -> str:
    payload = orjson.dumps(["created_at", "asc", row[6].isoformat(), row[0].hex])
    signature = hmac.new(CURSOR_KEY, payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(signature)}"


def _after(cursor: str) -> tuple[datetime, uuid.UUID]:
    body = cursor.split(".", 1)[0]
    _, _, value, id_hex = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return datetime.fromisoformat(value), uuid.UUID(hex=id_hex)


async def _body(receive: Any) -> bytes:
    chunks = b""
    more = True
    while more:
        message = await receive()
        chunks += message.get("body", b"")
        more = message.get("more_body", False)
    return chunks


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _product_response(send: Any, row: tuple[Any, ...], status: int = 200) -> None:
    headers = [*JSON, (b"etag", f'"v{row[8]}"'.encode())]
    if status == 201:
        headers.append((b"location", f"/products/{row[0]}".encode()))
    await _send(send, status, orjson.dumps(product(row), option=orjson.OPT_UTC_Z), headers)


async def _problem(send: Any, status: int, path: str) -> None:
    body = {"type": "about:blank", "title": "", "status": status, "instance": path}
    await _send(send, status, orjson.dumps(body), PROBLEM)


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _list(scope: dict[str, Any], send: Any) -> None:
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    limit = int(query.get("limit", "20"))
    if "cursor" in query:
        rows = await pool.fetch(NEXT_PAGE, (*_after(query["cursor"]), limit + 1))
    else:
        rows = await pool.fetch(FIRST_PAGE, (limit + 1,))
    page = rows[:limit]
    cursor = _cursor(page[-1]) if len(rows) > limit else None
    body = {"items": [product(r) for r in page], "next_cursor": cursor}
    await _send(send, 200, orjson.dumps(body, option=orjson.OPT_UTC_Z), JSON)


async def _create(receive: Any, send: Any) -> None:
    raw = orjson.loads(await _body(receive))
    now = datetime.now(UTC)
    row = (
        uuid7(),
        raw["sku"],
        raw["name"],
        raw.get("description"),
        int(Decimal(str(raw["price"])) * 100),
        raw["quantity"],
        now,
        now,
    )
    await pool.fetch(INSERT, (*row, folded(row[2]), uuid7()))
    await _product_response(send, (*row, 1), 201)


async def _replace(scope: dict[str, Any], receive: Any, send: Any, product_id: str) -> None:
    raw = orjson.loads(await _body(receive))
    values = (
        product_id,
        raw["sku"],
        raw["name"],
        folded(raw["name"]),
        raw.get("description"),
        int(Decimal(str(raw["price"])) * 100),
        raw["quantity"],
        datetime.now(UTC),
    )
    match = _header(scope, b"if-match")
    if match is None or match.strip() == b"*":
        rows = await pool.fetch(UPDATE_ANY, (*values, uuid7()))
    else:
        version = int(match.strip()[2:-1])
        rows = await pool.fetch(UPDATE_AT_VERSION, (*values, version, uuid7()))
    if not rows:
        await _problem(send, 412 if match else 404, scope["path"])
        return
    await _product_response(send, rows[0])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path, method = scope["path"], scope["method"]
    if path == "/health":
        await _send(send, 200, HEALTH, JSON)
    elif path == "/products":
        if method == "POST":
            await _create(receive, send)
        else:
            await _list(scope, send)
    elif path.startswith("/products/"):
        product_id = path[len("/products/") :]
        if method == "PUT":
            await _replace(scope, receive, send, product_id)
            return
        rows = await pool.fetch(GET, (product_id,))
        if rows:
            await _product_response(send, rows[0])
        else:
            await _problem(send, 404, path)
    else:
        await _problem(send, 404, path)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await pool.open()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    uvicorn.run(
        "floor:app",
        app_dir=os.path.dirname(os.path.abspath(__file__)),
        host=args.host,
        port=args.port,
        workers=args.workers,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
