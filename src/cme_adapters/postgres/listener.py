"""One LISTEN connection per worker: each commit's NOTIFY wakes that worker's waiting readers."""

import asyncio
import contextlib
import logging
from typing import Final

import psycopg
from psycopg.pq.abc import PGconn

from cme_adapters.notices import Notices
from cme_adapters.postgres.uow import OUTAGE_ERRORS, first_line
from cme_adapters.sql.outbox import CHANNEL

log = logging.getLogger("cme.changes")
RECONNECT_SECONDS: Final = 1.0


class ChangeListener:
    """Keeps a connection of its own (not the pool's) listening, and reconnects when it drops.

    While it is down, Notices falls back to polling, so no waiting reader misses an event.
    """

    def __init__(self, conninfo: str, notices: Notices, connect_timeout: int) -> None:
        self._conninfo = conninfo
        self._notices = notices
        self._connect_timeout = connect_timeout
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        while True:
            try:
                await self._follow()
            except OUTAGE_ERRORS as error:
                log.warning("change notices interrupted, polling meanwhile: %s", first_line(error))
            finally:
                self._notices.listening = False
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _follow(self) -> None:
        connection = await psycopg.AsyncConnection.connect(
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

        Every write notifies every worker, so this runs once per commit in each of them:
        libpq's own calls cost a few microseconds, where psycopg's notifies() generator cost
        about 100 us of the worker's CPU per notification (bench/RESULTS.md). A burst read in
        one go wakes the readers once.
        """
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                pgconn.consume_input()
            except psycopg.OperationalError as error:
                if not failed.done():
                    failed.set_exception(error)
                return
            heard = False
            while pgconn.notifies() is not None:
                heard = True
            if heard:
                self._notices.notify()

        socket = pgconn.socket  # asking again after a failure would raise
        loop.add_reader(socket, readable)
        try:
            await failed
        finally:
            loop.remove_reader(socket)
