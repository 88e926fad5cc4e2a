"""Domain errors: what can go wrong in the catalogue, independent of any transport."""

from collections.abc import Sequence

import attrs


class DomainError(Exception):
    """Base class of every error a use case raises on purpose."""


@attrs.frozen
class FieldError:
    field: str
    message: str


class InvalidProduct(DomainError):
    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = tuple(errors)


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
    """An adjustment would take the quantity below zero; nothing was written."""

    def __init__(self, available: int, delta: int) -> None:
        super().__init__(f"only {available} in stock: an adjustment of {delta} would go below 0")
        self.available = available
        self.delta = delta


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
