"""The ports the use cases need; adapters implement them."""

from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

import attrs

from cme_domain.changes import ChangeBatch
from cme_domain.listing import Page, ProductQuery
from cme_domain.product import Product, ProductSpec


class ProductRepository(Protocol):
    async def add(self, product: Product) -> None:
        """Store a new product; raise DuplicateSku if its sku is taken."""

    async def get(self, product_id: UUID) -> Product | None: ...

    async def list(self, query: ProductQuery) -> Page: ...

    async def replace(
        self, product_id: UUID, spec: ProductSpec, now: datetime, expected_version: int | None
    ) -> Product | None:
        """Overwrite the client fields and bump the version, in one compare-and-set step.

        Return None when the product is gone or (with expected_version) has moved on;
        raise DuplicateSku if the new sku is taken.
        """

    async def delete(self, product_id: UUID, now: datetime, expected_version: int | None) -> bool:
        """Remove the product; False when it is gone or has moved past expected_version.

        Every write above also records its change event (occurring at `now` for a delete) in
        the same transaction as the write itself.
        """


@attrs.frozen
class IdempotencyRecord:
    """What a create with an Idempotency-Key produced, kept so a retry gets the same answer."""

    owner: str
    key: str
    fingerprint: str
    product_id: UUID
    created_at: datetime
    expires_at: datetime


class IdempotencyStore(Protocol):
    async def find(self, owner: str, key: str, now: datetime) -> IdempotencyRecord | None:
        """The unexpired record for this caller's key, if any."""

    async def add(self, record: IdempotencyRecord) -> None:
        """Keep the record, replacing an expired one.

        Raise IdempotentRequestInProgress if an unexpired record for the key appeared meanwhile
        (a concurrent request with the same key got there first).
        """

    async def prune(self, now: datetime) -> int:
        """Delete every record that has expired by now; return how many went."""


class UnitOfWork(Protocol):
    """The statements of one use case, atomic unless the factory was told otherwise.

    Atomic: one transaction, and nothing it wrote survives unless commit() is called.
    Not atomic: each statement takes effect on its own and commit() has nothing to do.
    """

    products: ProductRepository
    idempotency: IdempotencyStore

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, atomic: bool = True) -> UnitOfWork:
        """A new unit of work.

        atomic=False is for work that needs no transaction: reads, and writes that are a
        single statement or a compare-and-set on version. It spares the database the BEGIN
        and COMMIT round trips.
        """


class ChangeFeed(Protocol):
    """The committed change events, each at a position no later commit can take."""

    async def read(self, after: int | None, limit: int) -> ChangeBatch:
        """Up to `limit` events positioned after `after` (None: the oldest retained), in order.

        Every event committed before the call has its position by the time it reads.
        """

    async def prune(self, before: datetime) -> int:
        """Delete the events that occurred before `before`, oldest positions first; return how
        many went. What stays is always every event after some position."""


class ChangeNotices(Protocol):
    """Word that events may have been committed, so a waiting reader need not poll blindly."""

    def heard(self) -> int:
        """How many notices have come so far: pass it to `wait` to miss none in between."""

    async def wait(self, since: int, seconds: float) -> bool:
        """Wait up to `seconds` for a notice after `since`.

        True: look again (a notice came, or this store can only be polled). False: the time
        ran out or the service is stopping, so answer with what there is.
        """


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class IdGenerator(Protocol):
    def new_id(self) -> UUID: ...
