"""Mapping every error to problem+json: domain errors, HTTP errors and the unexpected."""

import logging
from collections.abc import Callable
from typing import Any, Final, cast

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from cme_domain.errors import (
    ChangesPruned,
    CursorAhead,
    DomainError,
    DuplicateSku,
    IdempotencyKeyReused,
    IdempotentProductDeleted,
    IdempotentRequestInProgress,
    InsufficientStock,
    InvalidProduct,
    ProductNotFound,
    ReservationEnded,
    ReservationExpired,
    ReservationNotFound,
    Shortage,
    ShortOfStock,
    SkusTaken,
    StockEntryNotFound,
    StockHeld,
    StockOverflow,
    StorageBusy,
    StorageStillUnavailable,
    StorageUnavailable,
    TooManyWebhooks,
    VersionMismatch,
    WebhookNotFound,
    WriteContention,
    WriteOutcomeUnknown,
)
from cme_domain.principal import MissingScope
from cme_domain.product import QUANTITY_MAX
from cme_entrypoints.http.problems import Problem, invalid_fields, render

log = logging.getLogger("cme.errors")

_RETRY_SOON: Final = {"Retry-After": "1"}


_DOMAIN: Final[dict[type[DomainError], Callable[[DomainError], Problem]]] = {
    InvalidProduct: lambda e: invalid_fields(cast(InvalidProduct, e)),
    ProductNotFound: lambda e: Problem(404, "no product has this id", slug="not-found"),
    StockEntryNotFound: lambda e: Problem(
        404, "this product has no stock entry with this id", slug="not-found"
    ),
    DuplicateSku: lambda e: Problem(409, str(e), slug="duplicate-sku"),
    VersionMismatch: lambda e: Problem(412, str(e), slug="version-mismatch"),
    InsufficientStock: lambda e: Problem(
        409,
        str(e),
        slug="insufficient-stock",
        extensions={"available": cast(InsufficientStock, e).available},
    ),
    ShortOfStock: lambda e: Problem(
        409,
        str(e),
        slug="insufficient-stock",
        extensions={"shortages": [_shortage(s) for s in cast(ShortOfStock, e).shortages]},
    ),
    StockHeld: lambda e: Problem(
        409, str(e), slug="insufficient-stock", extensions={"held": cast(StockHeld, e).held}
    ),
    ReservationNotFound: lambda e: Problem(404, "no reservation has this id", slug="not-found"),
    ReservationExpired: lambda e: Problem(410, str(e), slug="reservation-expired"),
    ReservationEnded: lambda e: Problem(409, str(e), slug="reservation-ended"),
    WebhookNotFound: lambda e: Problem(404, "no webhook has this id", slug="not-found"),
    TooManyWebhooks: lambda e: Problem(409, str(e), slug="too-many-webhooks"),
    StockOverflow: lambda e: Problem(
        422,
        str(e),
        slug="validation-error",
        errors=[{"field": "delta", "message": f"would take the quantity past {QUANTITY_MAX}"}],
    ),
    SkusTaken: lambda e: Problem(409, str(e), slug="duplicate-sku"),
    WriteContention: lambda e: Problem(
        409,
        "other writers kept changing the product while the write was applied; "
        "nothing was changed, retry after the Retry-After delay",
        slug="contention",
        headers=_RETRY_SOON,
    ),
    IdempotencyKeyReused: lambda e: Problem(
        422,
        "this Idempotency-Key was used with a different body or operation",
        slug="idempotency-key-reused",
        errors=[
            {"field": "Idempotency-Key", "message": "was used with a different body or operation"}
        ],
    ),
    IdempotentProductDeleted: lambda e: Problem(
        409,
        "what this Idempotency-Key's request wrote has since been deleted",
        slug="idempotent-product-deleted",
    ),
    IdempotentRequestInProgress: lambda e: Problem(
        409,
        "a request with this Idempotency-Key is still in progress; retry shortly",
        slug="idempotency-in-progress",
        headers=_RETRY_SOON,
    ),
    # Before StorageUnavailable, its base class: the first kind that matches is used.
    WriteOutcomeUnknown: lambda e: Problem(
        503,
        "the database connection broke after the change was sent, so it may or may not have"
        " been applied: only a retry with the same Idempotency-Key is safe (it returns the"
        " original answer), or read the product to see",
        slug="database-unavailable",
        headers={"Retry-After": "2"},
    ),
    StorageBusy: lambda e: Problem(
        503,
        f"the database is reachable but busy: {e}; retry after the Retry-After delay",
        slug="database-busy",
        headers=_RETRY_SOON,
    ),
    StorageUnavailable: lambda e: Problem(
        503,
        "the database is not reachable",
        slug="database-unavailable",
        headers={"Retry-After": "2"},
    ),
    MissingScope: lambda e: Problem(403, str(e), slug="forbidden"),
    ChangesPruned: lambda e: Problem(
        410,
        f"{e}: take a full snapshot again (GET /products), then follow the feed from cursor=latest",
        slug="changes-pruned",
    ),
    CursorAhead: lambda e: Problem(400, str(e), slug="bad-cursor"),
}


def _shortage(shortage: Shortage) -> dict[str, Any]:
    return {
        "product_id": str(shortage.product_id),
        "requested": shortage.requested,
        "available": shortage.available,
    }


async def problem_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, Problem)
    return render(error, request.url.path)


async def domain_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, DomainError)
    to_problem = next((f for kind, f in _DOMAIN.items() if isinstance(error, kind)), None)
    if to_problem is None:
        return await unexpected_handler(request, error)
    # A refusal of a database already known to be down: its outage was logged when it began.
    # Nor is an overload (StorageBusy) an outage to warn of, one line per refused request.
    if isinstance(error, StorageUnavailable) and not isinstance(
        error, StorageStillUnavailable | StorageBusy
    ):
        log.warning("database unavailable: %s", error)
    return render(to_problem(error), request.url.path)


async def http_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    detail = {404: "no such resource", 405: "this method is not allowed here"}.get(
        error.status_code, str(error.detail)
    )
    headers = dict(error.headers or {})
    if "Allow" in headers:  # Starlette joins a route's method set: sorted, it is stable
        headers["Allow"] = ", ".join(sorted(headers["Allow"].split(", ")))
    return render(Problem(error.status_code, detail, headers=headers), request.url.path)


async def unexpected_handler(request: Request, error: Exception) -> Response:
    log.error("unhandled error", exc_info=error)
    return render(Problem(500, "an unexpected error occurred"), request.url.path)
