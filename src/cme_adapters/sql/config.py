"""Pool sizes and URL schemes every database adapter shares, without importing a driver."""

import attrs
from sqlalchemy.engine import URL, make_url


@attrs.frozen
class PoolSettings:
    size: int = 5
    timeout_seconds: float = 2.0
    connect_timeout_seconds: int = 2
    statement_timeout_ms: int = 5000
    recycle_seconds: int = 1800


def async_url(url: str) -> URL:
    """Accept libpq-style URLs as cloud consoles print them and pick the async drivers."""
    parsed = make_url(url)
    drivers = {
        "postgresql": "postgresql+psycopg",
        "postgres": "postgresql+psycopg",
        "postgresql+psycopg": "postgresql+psycopg",
        "sqlite": "sqlite+aiosqlite",
        "sqlite+aiosqlite": "sqlite+aiosqlite",
    }
    if parsed.drivername not in drivers:
        raise ValueError(f"unsupported database scheme {parsed.drivername!r}")
    return parsed.set(drivername=drivers[parsed.drivername])
