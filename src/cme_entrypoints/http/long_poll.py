"""Long polls that cannot crowd a worker: a bound on waits per worker and per caller, and a wait
that ends the moment its client leaves."""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Final, TypeVar

from starlette.types import Receive

from cme_entrypoints.http.problems import Problem

T = TypeVar("T")
# Request state set on a request that asked to wait: its latency is its wait, so metrics keep
# it out of the latency SLO (the request_latency_seconds label long_poll="true").
LONG_POLL: Final = "cme.long_poll"
_RETRY: dict[str, str] = {"Retry-After": "1"}


class WaitSlots:
    """How many requests may wait at once: in this worker, and for one caller.

    uvicorn refuses every request, /health included, once its running tasks reach its
    concurrency limit; waits kept well below that limit always leave room for the rest.
    """

    def __init__(self, per_worker: int, per_caller: int) -> None:
        self.per_worker = per_worker
        self.per_caller = per_caller
        self._waiting = 0
        self._by_caller: Counter[str] = Counter()

    @contextmanager
    def taken(self, caller: str) -> Iterator[None]:
        if self._by_caller[caller] >= self.per_caller:
            detail = f"this caller already has {self.per_caller} waiting requests; retry shortly"
            raise Problem(429, detail, slug="too-many-waits", headers=_RETRY)
        if self._waiting >= self.per_worker:
            detail = "this server holds as many waiting requests as it may; retry shortly"
            raise Problem(503, detail, slug="too-many-waits", headers=_RETRY)
        self._waiting += 1
        self._by_caller[caller] += 1
        try:
            yield
        finally:
            self._waiting -= 1
            self._by_caller[caller] -= 1
            if not self._by_caller[caller]:
                del self._by_caller[caller]  # a caller that has gone leaves nothing behind


async def unless_gone(work: Awaitable[T], receive: Receive) -> T | None:
    """The work's result, or None as soon as the client disconnects (the work is cancelled)."""
    working = asyncio.ensure_future(work)
    watching = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((working, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, watching):
            task.cancel()
    return working.result() if working.done() and not working.cancelled() else None


async def _disconnected(receive: Receive) -> None:
    # Past the request's (empty) body, the server's next message is its disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
