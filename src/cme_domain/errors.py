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
