"""Idempotency keys, as every use case that takes one checks them: the request a key was first
used for, and the record of it."""

import hashlib
from datetime import datetime

import attrs

from cme_domain.errors import IdempotencyKeyReused
from cme_domain.ports import IdempotencyRecord, IdempotencyStore
from cme_domain.principal import Principal


async def recorded(
    store: IdempotencyStore, principal: Principal, key: str, now: datetime
) -> IdempotencyRecord | None:
    return await store.find(principal.subject, key, now)


def same_request(earlier: IdempotencyRecord, fingerprint: str, key: str) -> None:
    if earlier.fingerprint != fingerprint:
        raise IdempotencyKeyReused(key)


def fingerprint(operation: str, *parts: object) -> str:
    """The request a key was first used for: the operation and its input, so one key reused
    for another operation, or another body, is refused."""
    canonical = repr((operation, *(_plain(p) for p in parts)))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(part: object) -> object:
    return attrs.astuple(part) if attrs.has(type(part)) else part  # type: ignore[arg-type]
