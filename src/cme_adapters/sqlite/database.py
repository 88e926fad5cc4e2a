"""SQLite (or any engine SQLAlchemy drives) as the app sees it: units of work, probes, shutdown."""

import math
import secrets
from collections.abc import Callable

import attrs
from sqlalchemy import QueuePool, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from cme_adapters.notices import Notices, Watch
from cme_adapters.sql.config import PoolSettings
from cme_adapters.sql.engine import (
    TRANSACTION_ISOLATION,
    create_engine,
    outages_as_unavailable,
    ping,
)
from cme_adapters.sql.statements import (
    CURSOR_SECRET,
    FIND_SECRET,
    INSERT_SECRET,
    SCHEMA_REVISION,
)
from cme_adapters.sqlite.changes import SqlChangeFeed
from cme_adapters.sqlite.gate import FirstComeGate
from cme_adapters.sqlite.uow import SqlUnitOfWork
from cme_adapters.system import SystemClock
from cme_domain.ports import Clock


@attrs.define
class SqlDatabase:
    # Pooled connections stay in autocommit, where most work runs: one round trip per
    # statement, not BEGIN, statement and COMMIT.
    engine: AsyncEngine
    _gate: FirstComeGate
    # Told how long each repository call spent on the database (the query latency metric).
    _on_query: Callable[[float], None] | None = None
    # What `held` counts by: the same clock as the use cases' in a test that moves time.
    _clock: Clock = attrs.Factory(SystemClock)
    # Switching a connection's mode on every check-out and back on check-in cost more CPU than
    # the statement (bench/RESULTS.md), so only atomic units of work pay for it, through this
    # view of the same pool.
    _transactional: AsyncEngine = attrs.field(
        default=attrs.Factory(
            lambda self: self.engine.execution_options(
                isolation_level=TRANSACTION_ISOLATION[self.engine.dialect.name]
            ),
            takes_self=True,
        )
    )

    @classmethod
    def connect(
        cls,
        url: str,
        pool: PoolSettings,
        on_query: Callable[[float], None] | None = None,
        *,
        clock: Clock | None = None,
    ) -> "SqlDatabase":
        gate = FirstComeGate(pool.size, pool.timeout_seconds)
        engine = create_engine(url, pool, autocommit=True)
        return cls(engine, gate, on_query, clock=clock or SystemClock())

    # SQLite cannot tell a process of another's commits: one watch per worker polls for them,
    # and sees every one, so a waiting reader needs no poll of its own while it runs.
    _notices: Notices = attrs.Factory(lambda: Notices(safety_poll_seconds=math.inf))
    _watch: Watch = attrs.field(
        default=attrs.Factory(
            lambda self: Watch(self.change_feed().newest, self._notices), takes_self=True
        )
    )

    def listen(self) -> None:
        self._watch.start()

    def change_feed(self) -> SqlChangeFeed:
        return SqlChangeFeed(self.engine)

    def change_notices(self) -> Notices:
        return self._notices

    def unit_of_work(self, *, atomic: bool = True) -> SqlUnitOfWork:
        engine = self._transactional if atomic else self.engine
        return SqlUnitOfWork(
            engine.sync_engine,
            self._gate,
            self._clock,
            atomic=atomic,
            on_query=self._on_query,
            on_change=self._watch.poke,
        )

    async def open(self) -> None:
        """Nothing to start: the engine connects on first use."""

    async def ping(self) -> None:
        await ping(self.engine)

    async def cursor_secret(self) -> bytes:
        """The key cursors are signed with: made on first use and kept in the database."""
        params = {"name": CURSOR_SECRET, "value": secrets.token_urlsafe(48)}
        async with outages_as_unavailable(), self.engine.begin() as connection:
            value = (await connection.execute(FIND_SECRET, params)).scalar()
            if value is None:
                await connection.execute(INSERT_SECRET, params)
                value = params["value"]
        return str(value).encode()

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at; None when it was never migrated."""
        async with outages_as_unavailable(), self.engine.connect() as connection:
            try:
                revision = (await connection.execute(text(SCHEMA_REVISION))).scalar()
            except OperationalError as error:
                if "no such table" not in str(error.orig):
                    raise
                return None
        return None if revision is None else str(revision)

    def pool_stats(self) -> dict[str, int]:
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return {}
        return {"in_use": pool.checkedout(), "idle": pool.checkedin()}

    async def close(self) -> None:
        self._notices.stop()
        await self._watch.close()
        await self.engine.dispose()
