"""The change feed: one event per committed product change, in an order every consumer shares."""

import enum
from datetime import datetime
from typing import Final, Protocol
from uuid import UUID

import attrs

from cme_domain.product import Product

FEED_PAGE_MIN: Final = 1
FEED_PAGE_MAX: Final = 1000
FEED_PAGE_DEFAULT: Final = 100
WAIT_MAX_SECONDS: Final = 30


class ChangeType(enum.StrEnum):
    CREATED = "product.created"
    UPDATED = "product.updated"
    DELETED = "product.deleted"
    STOCK_ADJUSTED = "product.stock_adjusted"


@attrs.frozen
class Change:
    """What one committed write did: `product` is the state after it, None after a delete.

    A delete carries the deleted version plus one, so a product's events have strictly rising
    versions whatever they are.
    """

    sequence: int
    type: ChangeType
    product_id: UUID
    version: int
    occurred_at: datetime
    product: Product | None


@attrs.frozen
class ChangeBatch:
    """Events after a position, and where the feed stood when they were read.

    `pruned_through`: every event up to this position has been deleted by retention.
    `end`: the newest position the feed had handed out, the consumer's catch-up target.
    """

    items: tuple[Change, ...]
    pruned_through: int
    end: int

    def next_cursor(self, after: int | None) -> int:
        if self.items:
            return self.items[-1].sequence
        return self.pruned_through if after is None else after

    def lag(self, after: int | None) -> int:
        """How many events the answer left between its cursor and the newest one."""
        return max(self.end - self.next_cursor(after), 0)


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
