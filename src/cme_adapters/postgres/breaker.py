"""Whether PostgreSQL can be reached: known from one failed connection, asked by one probe."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Self

from psycopg_pool import AsyncConnectionPool

from cme_adapters.postgres.uow import OUTAGE_ERRORS, Connection, Refused, first_line

log = logging.getLogger("cme")
# How often a worker that knows the database is down tries one connection: it serves again
# within this long of the database's return.
RETRY_SECONDS: Final = 0.25


class Breaker:
    """Open from a failed connection attempt to a successful one; while open, refuse at once.

    Without it each request waited the pool's whole timeout for a connection that could not
    be made, and the pool tried (and logged) a connection for each. A broken connection alone
    proves nothing (the server may have ended just that one): `check` then asks the database
    with one connection attempt, which every caller asking meanwhile shares. Once open, one
    attempt at a time, every RETRY_SECONDS, finds out when it is back; it closes only after
    `on_back` (replacing the pooled connections the outage left dead) has run. The outage's
    start and end are one WARNING each; every failed attempt goes to `on_failure` (a metric).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[None]],
        on_back: Callable[[], Awaitable[None]],
        on_failure: Callable[[], None] | None = None,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._connect = connect
        self._on_back = on_back
        self._on_failure = on_failure
        self._retry_seconds = retry_seconds
        self._down_since: float | None = None
        # Until one connection has been made, the start-up check reports the database as
        # unreachable (http/schema_check.py): the outage's first line is its own.
        self._reached = False
        self._reason = ""
        self._failures = 0
        self._probe: asyncio.Task[bool] | None = None
        self._retrying: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._up.set()

    @property
    def troubled(self) -> bool:
        """Known to be down, or being asked whether it is."""
        return self._down_since is not None or (self._probe is not None and not self._probe.done())

    def refuse(self) -> None:
        """Raise Refused while the database is known to be unreachable."""
        if self._down_since is not None:
            raise Refused(f"the database is not reachable: {self._reason}")

    def failed(self, error: BaseException) -> None:
        """A connection attempt failed: the database cannot be reached."""
        self._failures += 1
        if self._on_failure is not None:
            self._on_failure()
        if self._down_since is None:
            self._down_since, self._reason = time.monotonic(), first_line(error)
            self._up.clear()
            log.log(
                logging.WARNING if self._reached else logging.INFO,
                "database unreachable, answering 503 until it is back: %s",
                self._reason,
            )
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry())

    def reached(self) -> None:
        """A connection was made."""
        self._reached = True

    def _succeeded(self) -> None:
        self._reached = True
        if self._down_since is None:
            return
        down = time.monotonic() - self._down_since
        log.warning(
            "database reachable again after %.1f s (%d connection attempts failed meanwhile)",
            down,
            self._failures,
        )
        self._down_since, self._failures = None, 0
        self._up.set()

    def check(self) -> Awaitable[bool]:
        """Whether the database takes a connection now: one attempt, shared with every caller
        that asks before it ends."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._attempt())
        return asyncio.shield(self._probe)

    async def reachable(self) -> None:
        """Return once the database is not known to be down."""
        await self._up.wait()

    async def close(self) -> None:
        for task in (self._retrying, self._probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _attempt(self) -> bool:
        try:
            await self._connect()
        except OUTAGE_ERRORS as error:
            self.failed(error)
            return False
        if self._down_since is not None:
            await self._on_back()
            self._succeeded()
        return True

    async def _retry(self) -> None:
        while self._down_since is not None:
            await asyncio.sleep(self._retry_seconds)
            await self.check()


def reporting(breaker: Breaker) -> type[Connection]:
    """A connection class that tells the breaker how each of its connection attempts went."""

    class Reporting(Connection):
        @classmethod
        async def connect(cls, *args: Any, **kwargs: Any) -> Self:
            try:
                connection = await super().connect(*args, **kwargs)
            except OUTAGE_ERRORS as error:
                breaker.failed(error)
                raise
            breaker.reached()
            return connection

    return Reporting


class GuardedPool(AsyncConnectionPool[Connection]):
    """psycopg's pool, whose connections report to the breaker, and which refuses at once
    while the breaker knows the database is down (the feed and the probes use it too)."""

    def __init__(self, conninfo: str, breaker: Breaker, **options: Any) -> None:
        super().__init__(conninfo, connection_class=reporting(breaker), **options)
        self._breaker = breaker

    async def getconn(self, timeout: float | None = None) -> Connection:  # noqa: ASYNC109 (the pool's own)
        self._breaker.refuse()
        return await super().getconn(timeout)


class QuietWhileTroubled(logging.Filter):
    """Drops psycopg_pool's warnings (one per connection attempt, lost or discarded connection)
    while the breaker is troubled: the breaker logs the outage once, and counts each attempt."""

    def __init__(self, breaker: Breaker) -> None:
        super().__init__()
        self._breaker = breaker

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING or not self._breaker.troubled
