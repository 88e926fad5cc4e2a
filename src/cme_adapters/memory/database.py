"""The in-memory database and its unit of work: the unit tests' database, and the contract
suite's reference."""

import secrets
from types import TracebackType
from typing import Self

import attrs

from cme_adapters.memory.changes import InMemoryChangeFeed
from cme_adapters.memory.repository import InMemoryIdempotencyStore, InMemoryProductRepository
from cme_adapters.memory.reservations import InMemoryReservationRepository
from cme_adapters.memory.store import InMemoryStore, Undo
from cme_adapters.memory.webhooks import InMemoryWebhookRepository
from cme_adapters.notices import Notices
from cme_adapters.system import SystemClock
from cme_domain.ports import Clock


class InMemoryUnitOfWork:
    """Writes apply at once; an atomic unit of work undoes them unless committed.

    None of the repository's methods awaits anything, so a use case's whole transaction runs
    without another coroutine interleaving: that is this adapter's isolation.
    """

    def __init__(self, store: InMemoryStore, clock: Clock, *, atomic: bool = True) -> None:
        self._store = store
        self._atomic = atomic
        self._undo: list[Undo] = []
        self.products = InMemoryProductRepository(store, self._undo, clock)
        self.idempotency = InMemoryIdempotencyStore(store, self._undo)
        self.reservations = InMemoryReservationRepository(store, self._undo, clock)
        self.webhooks = InMemoryWebhookRepository(store, self._undo)

    async def __aenter__(self) -> Self:
        self._undo.clear()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._atomic:
            for undo in reversed(self._undo):
                undo()
        self._undo.clear()

    async def commit(self) -> None:
        self._undo.clear()


@attrs.define
class InMemoryDatabase:
    store: InMemoryStore = attrs.Factory(InMemoryStore)
    # What `held` counts by: the same clock as the use cases' in a test that moves time.
    clock: Clock = attrs.Factory(SystemClock)
    _cursor_secret: bytes = attrs.Factory(lambda: secrets.token_urlsafe(48).encode())

    def unit_of_work(self, *, atomic: bool = True) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store, self.clock, atomic=atomic)

    def listen(self) -> None:
        """Writes in this process notify directly (InMemoryStore.record)."""

    def change_feed(self) -> InMemoryChangeFeed:
        return InMemoryChangeFeed(self.store)

    def change_notices(self) -> Notices:
        return self.store.notices

    async def open(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def cursor_secret(self) -> bytes:
        return self._cursor_secret

    async def schema_revision(self) -> str | None:
        """The fake has no schema to fall behind: it names none that a migration could name,
        which the schema check serves as a revision ahead of the code's."""
        return "in-memory"

    def pool_stats(self) -> dict[str, int]:
        return {}

    async def close(self) -> None:
        self.store.notices.stop()
