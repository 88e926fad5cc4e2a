"""Column types that keep times in UTC and names in byte order alike on every dialect."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, String, TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite stores them naive, so UTC is restored on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is UTC:  # PostgreSQL sessions run in UTC (engine.py)
            return moment
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


# Byte order on PostgreSQL, as on SQLite and in Python, so every adapter sorts names alike.
NameText = String(200).with_variant(String(200, collation="C"), "postgresql")
# The outbox's id (schema.product_changes): SQLite's rowid is an INTEGER key.
ChangeId = BigInteger().with_variant(Integer, "sqlite")
