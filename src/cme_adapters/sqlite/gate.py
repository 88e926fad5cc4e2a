"""First come, first served: a limit on units of work in front of the connection pool."""

import asyncio

from cme_domain.errors import StorageBusy


class FirstComeGate:
    """Lets at most `size` units of work hold connections, in the order they asked.

    SQLAlchemy's async pool waits on an asyncio.Queue, where a task that has just returned a
    connection can take it straight back ahead of the tasks already waiting: under load a
    waiter could starve until the pool timeout and get a 503 while others were served in
    milliseconds (tests/integration/test_pool_fairness.py). asyncio.Semaphore hands a freed
    slot to the longest waiter, and the pool behind it then never has to make anyone wait.
    """

    def __init__(self, size: int, timeout_seconds: float) -> None:
        self._slots = asyncio.Semaphore(size)
        self._timeout = timeout_seconds

    async def enter(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns without suspending
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise StorageBusy(
                f"no database connection came free within {self._timeout:g} s"
            ) from None

    def leave(self) -> None:
        self._slots.release()
