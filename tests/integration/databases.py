"""Open the adapter the service itself would run on for a database URL."""

from typing import Any

from cme_adapters.postgres.database import PostgresDatabase
from cme_adapters.sql.config import PoolSettings
from cme_adapters.sqlite.database import SqlDatabase
from cme_domain.ports import Clock


async def open_database(
    url: str, pool: PoolSettings, *, clock: Clock | None = None, **options: Any
) -> Any:
    """The adapter the service runs on for this URL, opened: psycopg's pool or SQLite's engine.

    clock is what the products' `held` counts by (the real one unless given).
    """
    if url.startswith("sqlite"):
        database: Any = SqlDatabase.connect(url, pool, clock=clock, **options)
    else:
        database = PostgresDatabase(url, pool, clock=clock, **options)
    await database.open()
    return database
