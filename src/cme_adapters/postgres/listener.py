"""One LISTEN connection per worker: it hears other workers' commits and announces its own."""

import asyncio
import contextlib
import logging
from typing import Final

import psycopg
from psycopg.pq import ExecStatus
from psycopg.pq.abc import PGconn

from cme_adapters.notices import Notices
from cme_adapters.postgres.breaker import Breaker
from cme_adapters.postgres.uow import OUTAGE_ERRORS, Connection, first_line
from cme_adapters.sql.outbox import CHANNEL

log = logging.getLogger("cme.changes")
RECONNECT_SECONDS: Final = 1.0
# At most one NOTIFY per worker in this long: a burst of commits costs PostgreSQL one
# notification, and another worker's waiting readers hear of it this much later at most.
ANNOUNCE_SECONDS: Final = 0.05
_NOTIFY: Final = f"NOTIFY {CHANNEL}".encode()


class ChangeListener:
    """Keeps a connection of its own (not the pool's) listening, and reconnects when it drops.

    Writers do not NOTIFY in their statements (it cost every write 100-170 us of the worker's
    CPU, bench/RESULTS.md). Instead, once a write with events has committed, `announce` wakes
    this worker's waiting readers at once and sends one NOTIFY on this connection for all the
    commits of the next ANNOUNCE_SECONDS, which wakes the other workers' readers. While the
    connection is down, Notices falls back to polling, so no waiting reader misses an event.
    Its connection attempts report to the breaker, and while the breaker knows the database
    is down it makes none: the breaker's probe finds out when it is back.
    """

    def __init__(
        self,
        conninfo: str,
        notices: Notices,
        connect_timeout: int,
        breaker: Breaker,
        connections: type[Connection],
    ) -> None:
        self._conninfo = conninfo
        self._notices = notices
        self._connect_timeout = connect_timeout
        self._breaker = breaker
        self._connections = connections
        self._task: asyncio.Task[None] | None = None
        self._pgconn: PGconn | None = None
        self._failed: asyncio.Future[None] | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._last_sent = float("-inf")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def announce(self) -> None:
        """Events were committed in this worker: tell its readers now, the others soon."""
        self._notices.notify()
        if self._pgconn is None or self._pending is not None:
            return  # nobody to tell through, or a NOTIFY is already due
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_sent + ANNOUNCE_SECONDS - loop.time())
        self._pending = loop.call_later(delay, self._send)

    def _send(self) -> None:
        self._pending = None
        pgconn = self._pgconn
        if pgconn is None:
            return
        loop = asyncio.get_running_loop()
        try:
            if pgconn.is_busy():
                # The previous NOTIFY is unanswered (libpq sends one query at a time); it may
                # have gone out before these commits, so send another once it is answered.
                self._pending = loop.call_later(ANNOUNCE_SECONDS, self._send)
                return
            self._last_sent = loop.time()
            pgconn.send_query(_NOTIFY)
            self._flush(pgconn)
        except psycopg.OperationalError as error:
            self._fail(error)

    def _flush(self, pgconn: PGconn) -> None:
        # The connection is non-blocking: a query the socket cannot take at once is finished
        # when it becomes writable.
        loop = asyncio.get_running_loop()
        if pgconn.flush() == 0:
            return
        socket = pgconn.socket

        def writable() -> None:
            try:
                if pgconn.flush() == 0:
                    loop.remove_writer(socket)
            except psycopg.OperationalError as error:
                loop.remove_writer(socket)
                self._fail(error)

        loop.add_writer(socket, writable)

    def _fail(self, error: BaseException) -> None:
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(error)

    async def _listen(self) -> None:
        while True:
            try:
                await self._follow()
            except OUTAGE_ERRORS as error:
                # Once per interruption; a failed reconnection is the breaker's to report.
                if self._notices.listening:
                    log.info("change notices interrupted, polling meanwhile: %s", first_line(error))
                    self._breaker.check()
            finally:
                self._notices.listening = False
            await asyncio.sleep(RECONNECT_SECONDS)
            await self._breaker.reachable()

    async def _follow(self) -> None:
        connection = await self._connections.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            application_name="cme-listener",
        )
        async with connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            self._notices.listening = True
            # Whatever committed while nobody listened: readers look once more.
            self._notices.notify()
            await self._drain(connection.pgconn)

    async def _drain(self, pgconn: PGconn) -> None:
        """Take notifications straight off the socket until the connection fails.

        libpq's own calls cost a few microseconds, where psycopg's notifies() generator cost
        about 100 us of the worker's CPU per notification (bench/RESULTS.md). A burst read in
        one go wakes the readers once. This worker's own NOTIFYs come back too: skipped, since
        `announce` woke its readers already.
        """
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[None] = loop.create_future()
        me = pgconn.backend_pid

        def readable() -> None:
            try:
                pgconn.consume_input()
                while not pgconn.is_busy():  # the answers to our NOTIFYs
                    result = pgconn.get_result()
                    if result is None:
                        break
                    if result.status != ExecStatus.COMMAND_OK:
                        log.warning("change announcement failed: %s", result.error_message)
            except psycopg.OperationalError as error:
                self._fail(error)
                return
            heard = False
            while (notice := pgconn.notifies()) is not None:
                heard = heard or notice.be_pid != me
            if heard:
                self._notices.notify()

        socket = pgconn.socket  # asking again after a failure would raise
        loop.add_reader(socket, readable)
        self._pgconn, self._failed = pgconn, failed
        try:
            await failed
        finally:
            self._pgconn, self._failed = None, None
            loop.remove_reader(socket)
            with contextlib.suppress(ValueError, OSError):
                loop.remove_writer(socket)
