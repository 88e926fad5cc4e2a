"""Engine construction for PostgreSQL (psycopg 3) and SQLite, and translation of outage errors."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from sqlalchemy import event, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cme_adapters.sql.config import PoolSettings, async_url
from cme_domain.errors import StorageUnavailable

# Errors that mean "the database cannot serve us now", as opposed to a bug or bad data.
OUTAGE_ERRORS = (OperationalError, InterfaceError, PoolTimeout, OSError, TimeoutError)


# What a transaction gets on each backend: its own default level, named for SQLAlchemy.
TRANSACTION_ISOLATION: Final = {"postgresql": "READ COMMITTED", "sqlite": "SERIALIZABLE"}


def create_engine(url: str, pool: PoolSettings, *, autocommit: bool = False) -> AsyncEngine:
    """An engine whose pooled connections start in autocommit mode, or in transactions."""
    target = async_url(url)
    isolation = "AUTOCOMMIT" if autocommit else TRANSACTION_ISOLATION[target.get_backend_name()]
    if target.get_backend_name() == "sqlite":
        engine = create_async_engine(
            target, isolation_level=isolation, connect_args={"timeout": pool.timeout_seconds}
        )
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    return create_async_engine(
        target,
        isolation_level=isolation,
        pool_size=pool.size,
        max_overflow=0,
        pool_timeout=pool.timeout_seconds,
        pool_recycle=pool.recycle_seconds,
        # The most recently used connection first: under light load the same few stay warm,
        # and psycopg prepares a statement after a connection has run it a few times.
        pool_use_lifo=True,
        connect_args={
            "connect_timeout": pool.connect_timeout_seconds,
            # In UTC, psycopg hands timestamps back already in the zone the domain uses.
            "options": f"-c statement_timeout={pool.statement_timeout_ms} -c TimeZone=UTC",
            "application_name": "cme",
        },
    )


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; NORMAL sync is durable at WAL checkpoints.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Off by default in SQLite: deleting a product must delete its stock ledger too.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@asynccontextmanager
async def outages_as_unavailable() -> AsyncIterator[None]:
    try:
        yield
    except OUTAGE_ERRORS as error:
        raise StorageUnavailable(first_line(error)) from error


def first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


async def ping(engine: AsyncEngine) -> None:
    """One trivial round trip; raises StorageUnavailable when the database cannot answer."""
    async with outages_as_unavailable(), engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
