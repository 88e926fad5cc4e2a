"""Waking the feed readers that wait for new events, or making them poll when nothing can tell."""

import asyncio
from typing import Final

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
        try:
            await asyncio.wait_for(self._next.wait(), limit)
        except TimeoutError:
            # A poll that ended before the reader's deadline: look again.
            return limit < seconds and not self._stopping
        return not self._stopping

    def _wake(self) -> None:
        woken, self._next = self._next, None
        if woken is not None:
            woken.set()
