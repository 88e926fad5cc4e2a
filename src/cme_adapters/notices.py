"""Waking the feed readers that wait for new events, or making them poll when nothing can tell."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

from cme_domain.errors import StorageUnavailable

# How often a waiting reader looks again when no notice can arrive (SQLite, or PostgreSQL
# while its listening connection is down).
POLL_SECONDS: Final = 0.2
# How often it looks again while listening: the safety net for a notice that was never sent
# (another worker's announcing connection was down when it committed).
SAFETY_POLL_SECONDS: Final = 5.0


class Notices:
    """A count of notices and the readers waiting for the next one, in one worker.

    `listening` says whether a notice will come for every commit; without one, a wait lasts
    at most poll_seconds and then says "look again"; with one, at most safety_poll_seconds.
    """

    def __init__(
        self,
        *,
        listening: bool = False,
        poll_seconds: float = POLL_SECONDS,
        safety_poll_seconds: float = SAFETY_POLL_SECONDS,
    ) -> None:
        self.listening = listening
        self.poll_seconds = poll_seconds
        self.safety_poll_seconds = safety_poll_seconds
        self._count = 0
        self._next: asyncio.Event | None = None
        self._stopping = False
        self._waiting = 0
        self._wanted = asyncio.Event()  # set while a reader waits

    def heard(self) -> int:
        return self._count

    def notify(self) -> None:
        """New events may have been committed: wake every waiting reader."""
        self._count += 1
        self._wake()

    def stop(self) -> None:
        """The service is stopping: every wait, now and later, ends at once."""
        self._stopping = True
        self._wake()

    async def wait(self, since: int, seconds: float) -> bool:
        if self._stopping:
            return False
        if self._count != since:
            return True
        poll = self.safety_poll_seconds if self.listening else self.poll_seconds
        limit = min(seconds, poll)
        if self._next is None:
            self._next = asyncio.Event()
        self._waiting += 1
        self._wanted.set()
        try:
            await asyncio.wait_for(self._next.wait(), limit)
        except TimeoutError:
            # A poll that ended before the reader's deadline: look again.
            return limit < seconds and not self._stopping
        finally:
            self._waiting -= 1
            if not self._waiting:
                self._wanted.clear()
        return not self._stopping

    async def wanted(self) -> None:
        """Return once a reader waits (at once if one does)."""
        await self._wanted.wait()

    def _wake(self) -> None:
        woken, self._next = self._next, None
        if woken is not None:
            woken.set()


class Watch:
    """One poll per worker, however many readers wait, for a store that cannot tell a process
    of another's commits (SQLite).

    While a reader waits, it asks `newest` (a value every commit of events changes) every
    poll_seconds, and at once when `poke`d by a commit of this worker, and wakes the readers
    when the value changed. The readers then need not poll: they wait to their deadline. While
    the store cannot answer, they poll again on their own (and meet the outage themselves).
    """

    def __init__(self, newest: Callable[[], Awaitable[object]], notices: Notices) -> None:
        self._newest = newest
        self._notices = notices
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def poke(self) -> None:
        """This worker committed events: look now rather than at the next poll."""
        self._due.set()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        # Unlike any answer: the first look wakes the readers, who may have missed a commit
        # made before it.
        last: object = object()
        try:
            while True:
                await self._notices.wanted()
                self._due.clear()
                try:
                    newest = await self._newest()
                except StorageUnavailable:
                    self._notices.listening = False
                else:
                    self._notices.listening = True
                    if newest != last:
                        last = newest
                        self._notices.notify()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._due.wait(), self._notices.poll_seconds)
        finally:
            self._notices.listening = False
