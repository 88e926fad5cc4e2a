"""Domain errors: what can go wrong in the catalogue, independent of any transport."""

import heapq
from collections.abc import Collection, Mapping, Sequence
from typing import Final
from uuid import UUID

import attrs

# An answer lists this many bad fields and counts the rest: a body of a million unknown keys
# must not cost a million errors, nor an answer larger than the body.
LISTED_ERRORS_MAX: Final = 100
# Unknown field names are the client's own text: echoed back, but no longer than this.
SHOWN_NAME_MAX: Final = 64


class DomainError(Exception):
    """Base class of every error a use case raises on purpose."""


@attrs.frozen
class FieldError:
    field: str
    message: str


class InvalidProduct(DomainError):
    """The first LISTED_ERRORS_MAX bad fields, and how many more were found."""

    def __init__(self, errors: Sequence[FieldError], unlisted: int = 0) -> None:
        self.errors = tuple(errors[:LISTED_ERRORS_MAX])
        self.unlisted = unlisted + len(errors) - len(self.errors)
        more = f"; and {self.unlisted} more" if self.unlisted else ""
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors) + more)


class FieldErrors:
    """Collects a body's bad fields: keeps the first LISTED_ERRORS_MAX, counts the rest."""

    def __init__(self) -> None:
        self.listed: list[FieldError] = []
        self.unlisted = 0

    def add(self, field: str, message: str) -> None:
        if len(self.listed) < LISTED_ERRORS_MAX:
            self.listed.append(FieldError(field, message))
        else:
            self.unlisted += 1

    def unknown(self, raw: Mapping[str, object], known: Collection[str], where: str = "") -> None:
        """Name the keys of raw that are not fields, in sorted order, without sorting them all."""
        unknown = [key for key in raw if key not in known]
        room = LISTED_ERRORS_MAX - len(self.listed)
        prefix = f"{where}." if where else ""
        for key in heapq.nsmallest(room, unknown):
            self.add(prefix + shown_name(key), "unknown field")
        self.unlisted += len(unknown) - min(room, len(unknown))

    def nested(self, where: str, invalid: InvalidProduct) -> None:
        """Take in the errors of one part of the body, named where.field."""
        for error in invalid.errors:
            self.add(f"{where}.{error.field}", error.message)
        self.unlisted += invalid.unlisted

    def raise_any(self) -> None:
        if self.listed:
            raise InvalidProduct(self.listed, self.unlisted)


def shown_name(name: str) -> str:
    """A client-chosen name as an error echoes it: cut to SHOWN_NAME_MAX characters."""
    return name if len(name) <= SHOWN_NAME_MAX else name[: SHOWN_NAME_MAX - 1] + "\u2026"


class ProductNotFound(DomainError):
    pass


class StockEntryNotFound(DomainError):
    """No ledger entry has this id for this product."""


class DuplicateSku(DomainError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"a product with sku {sku!r} already exists")
        self.sku = sku


class VersionMismatch(DomainError):
    """The caller's expected version is not the stored one: someone else changed the product."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected version {expected}, the product is at version {actual}")
        self.expected = expected
        self.actual = actual


class WriteContention(DomainError):
    """Concurrent writers kept winning the race for this product; the caller should retry."""


class IdempotencyKeyReused(DomainError):
    """The same idempotency key came back with a different request."""


class IdempotentProductDeleted(DomainError):
    """The product an idempotent create made has since been deleted, so it cannot be replayed."""


class IdempotentRequestInProgress(DomainError):
    """A request with this idempotency key is still running; the caller should retry later."""


class StorageUnavailable(DomainError):
    """The product store cannot be reached right now; the request may be retried."""


class StorageStillUnavailable(StorageUnavailable):
    """The store was already known to be unreachable: refused at once, without trying.

    The adapter said so once when the outage began; each refusal need not say it again.
    """


class StorageBusy(StorageUnavailable):
    """The store answers, but every connection stayed taken past the wait: an overload."""


class WriteOutcomeUnknown(StorageUnavailable):
    """The connection broke after a write was sent: it may or may not have been applied."""


class ChangesPruned(DomainError):
    """A feed cursor points before the oldest retained event: the events in between are gone."""

    def __init__(self, cursor: int, pruned_through: int) -> None:
        super().__init__(
            f"the events after {cursor} up to {pruned_through} are past retention and deleted"
        )
        self.cursor = cursor
        self.pruned_through = pruned_through


class CursorAhead(DomainError):
    """A feed cursor names a position the feed has not reached: no answer of ours holds it."""


class InsufficientStock(DomainError):
    """A write would take stock that is not there, or is held; nothing was written.

    available is what the write could have taken: the quantity less the units held.
    """

    def __init__(self, available: int, delta: int) -> None:
        super().__init__(f"only {available} available: a change of {delta} would take more")
        self.available = available
        self.delta = delta


@attrs.frozen
class Shortage:
    product_id: UUID
    requested: int
    available: int


class ShortOfStock(DomainError):
    """A reservation asked for more than is available of these products; nothing was held."""

    def __init__(self, shortages: Sequence[Shortage]) -> None:
        named = ", ".join(f"{s.product_id}: {s.available} of {s.requested}" for s in shortages)
        super().__init__(f"not enough available ({named})")
        self.shortages = tuple(shortages)


class StockHeld(DomainError):
    """A write would take units that reservations hold (a delete, or a batch's quantity
    below them); nothing was written."""

    def __init__(self, held: int, where: str = "the product") -> None:
        super().__init__(
            f"{where}: {held} units are held by reservations; confirm or release them first"
        )
        self.held = held


class ReservationNotFound(DomainError):
    pass


class ReservationExpired(DomainError):
    """The reservation's time ran out: its stock is no longer held and it cannot be confirmed."""

    def __init__(self, reservation_id: UUID) -> None:
        super().__init__(f"reservation {reservation_id} has expired")


class ReservationEnded(DomainError):
    """The reservation was confirmed or released, and this step cannot follow that one."""

    def __init__(self, reservation_id: UUID, status: str, step: str) -> None:
        super().__init__(f"reservation {reservation_id} is {status}: it cannot be {step}")
        self.status = status


class StockOverflow(DomainError):
    """An adjustment would take the quantity past the largest one a product can hold."""

    def __init__(self, available: int, delta: int, limit: int) -> None:
        super().__init__(
            f"{available} in stock: an adjustment of {delta} would pass the limit of {limit}"
        )
        self.available = available
        self.delta = delta


class SkusTaken(DomainError):
    """Products of a batch name skus that are taken: by another item of it, or by the store."""

    def __init__(self, indexes: Sequence[int], reason: str) -> None:
        named = ", ".join(str(i) for i in indexes)
        super().__init__(f"{reason}: products[{named}]" if indexes else reason)
        self.indexes = tuple(indexes)


class WebhookNotFound(DomainError):
    def __init__(self, webhook_id: UUID) -> None:
        super().__init__(f"no webhook has the id {webhook_id}")


class TooManyWebhooks(DomainError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the service already has {limit} webhooks, its most: delete one first")
