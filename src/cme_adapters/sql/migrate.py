"""Apply or revert the Alembic migrations on a database given by URL."""

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from cme_adapters.sql.config import PoolSettings
from cme_adapters.sql.engine import create_engine, outages_as_unavailable

_SCRIPTS = Path(__file__).with_name("migrations")


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    await _run(url, lambda connection: command.upgrade(_config(connection), revision))


async def downgrade(url: str, revision: str = "base") -> None:
    await _run(url, lambda connection: command.downgrade(_config(connection), revision))


async def _run(url: str, step: Callable[[Connection], None]) -> None:
    engine = create_engine(url, PoolSettings(size=1))
    try:
        async with outages_as_unavailable(), engine.begin() as connection:
            await connection.run_sync(step)
    finally:
        await engine.dispose()
