"""The FastAPI app: psycopg pool in the lifespan, a connection dependency, metrics, API key.

    uvicorn fastapi_ref.main:app --app-dir bench --workers 2 --http httptools --loop uvloop

DATABASE_URL names the database, API_KEY the key writes need, CURSOR_SECRET signs page cursors
(the service's, so cursors pass between them), DB_POOL_SIZE sizes the pool (default 5) and
FASTAPI_REF_MIDDLEWARE picks the metrics middleware (see metrics.py).
Only what the benchmark asks is served: /health, /db-check, /metrics, and GET (first page
and next pages in created_at order), POST and PUT of products. Each worker has its own
prometheus_client registry, as the library's default mode gives.
"""

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import psycopg
from fastapi import Depends, FastAPI, Header, Query, Request, Response, Security
from fastapi.security import APIKeyHeader
from psycopg_pool import AsyncConnectionPool
from sql import (
    FIRST_PAGE,
    GET,
    INSERT,
    NEXT_PAGE,
    PING,
    UPDATE_ANY,
    UPDATE_AT_VERSION,
    folded,
    uuid7,
)

from fastapi_ref import cursors, metrics, problems
from fastapi_ref.models import ProductIn, ProductOut, ProductPage
from fastapi_ref.problems import Problem

API_KEY = os.environ.get("API_KEY", "")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get("DB_POOL_SIZE") or 5)
    async with AsyncConnectionPool(
        os.environ["DATABASE_URL"],
        min_size=size,
        max_size=size,
        kwargs={"autocommit": True},
        open=False,
    ) as pool:
        app.state.pool = pool
        yield


app = FastAPI(title="cme FastAPI reference", lifespan=lifespan)
problems.install(app)
metrics.install(app)


async def get_connection(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with request.app.state.pool.connection() as connection:
        yield connection


Connection = Annotated[psycopg.AsyncConnection[Any], Depends(get_connection)]
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def require_api_key(key: Annotated[str | None, Security(api_key_header)]) -> None:
    if not API_KEY or key is None or not secrets.compare_digest(key.encode(), API_KEY.encode()):
        raise Problem(
            401,
            "unauthorized",
            "a valid X-API-Key is required",
            headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'},
        )


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/db-check")
async def db_check(connection: Connection) -> dict[str, str]:
    await connection.execute(PING)
    return {"status": "ok", "database": "reachable"}


@app.get("/products")
async def list_products(
    connection: Connection,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> ProductPage:
    if cursor is None:
        result = await connection.execute(FIRST_PAGE, (limit + 1,))
    else:
        try:
            after = cursors.decode(cursor)
        except cursors.BadCursor as error:
            raise Problem(400, "bad-cursor", str(error)) from None
        result = await connection.execute(NEXT_PAGE, (*after, limit + 1))
    rows = await result.fetchall()
    page = rows[:limit]
    next_cursor = cursors.encode(page[-1][6], page[-1][0]) if len(rows) > limit else None
    return ProductPage(items=[ProductOut.from_row(r) for r in page], next_cursor=next_cursor)


@app.get("/products/{product_id}")
async def get_product(product_id: UUID, connection: Connection, response: Response) -> ProductOut:
    result = await connection.execute(GET, (product_id,))
    row = await result.fetchone()
    if row is None:
        raise Problem(404, "not-found", "no product has this id")
    response.headers["ETag"] = f'"v{row[8]}"'
    return ProductOut.from_row(row)


@app.post("/products", status_code=201, dependencies=[Depends(require_api_key)])
async def create_product(
    product: ProductIn, connection: Connection, response: Response
) -> ProductOut:
    now = datetime.now(UTC)
    row = (
        uuid7(),
        product.sku,
        product.name,
        product.description,
        product.price_cents,
        product.quantity,
        now,
        now,
    )
    try:
        await connection.execute(INSERT, (*row, folded(row[2]), uuid7()))
    except psycopg.errors.UniqueViolation:
        raise Problem(409, "duplicate-sku", f"sku {product.sku!r} is taken") from None
    response.headers["ETag"] = '"v1"'
    response.headers["Location"] = f"/products/{row[0]}"
    return ProductOut.from_row((*row, 1))


@app.put("/products/{product_id}", dependencies=[Depends(require_api_key)])
async def replace_product(
    product_id: UUID,
    product: ProductIn,
    connection: Connection,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> ProductOut:
    values = (
        product_id,
        product.sku,
        product.name,
        folded(product.name),
        product.description,
        product.price_cents,
        product.quantity,
        datetime.now(UTC),
    )
    try:
        if if_match is None or if_match.strip() == "*":
            result = await connection.execute(UPDATE_ANY, (*values, uuid7()))
        else:
            version = _version(if_match)
            result = await connection.execute(UPDATE_AT_VERSION, (*values, version, uuid7()))
    except psycopg.errors.UniqueViolation:
        raise Problem(409, "duplicate-sku", f"sku {product.sku!r} is taken") from None
    row = await result.fetchone()
    if row is None:
        exists = await (await connection.execute(GET, (product_id,))).fetchone()
        if exists is None:
            raise Problem(404, "not-found", "no product has this id")
        raise Problem(412, "version-mismatch", "the product has changed since that version")
    response.headers["ETag"] = f'"v{row[8]}"'
    return ProductOut.from_row(row)


def _version(if_match: str) -> int:
    """The version an If-Match entity tag names ("v3" -> 3); 0, which never matches, otherwise."""
    tag = if_match.strip().removeprefix("W/")
    digits = tag[2:-1] if tag.startswith('"v') and tag.endswith('"') else ""
    return int(digits) if digits.isdigit() and len(digits) < 10 else 0
