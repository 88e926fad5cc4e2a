"""Webhooks: endpoints that get every change event pushed to them, one at a time, in feed order."""

import base64
import enum
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit
from uuid import UUID

import attrs

from cme_domain.changes import ChangeType
from cme_domain.errors import FieldErrors

URL_MAX: Final = 2000
DESCRIPTION_MAX: Final = 500
WEBHOOKS_MAX: Final = 100
DELIVERIES_PAGE_MAX: Final = 100
DELIVERIES_PAGE_DEFAULT: Final = 20
# No answer in this long is a failed attempt.
DELIVERY_TIMEOUT_SECONDS: Final = 10.0
FIRST_RETRY: Final = timedelta(seconds=1)
LAST_RETRY: Final = timedelta(minutes=10)
# The deliveries log keeps each endpoint's newest attempts, none older than a week.
DELIVERIES_KEPT: Final = 1000
DELIVERIES_RETENTION: Final = timedelta(days=7)
# Failing for this long disables the endpoint until someone turns it back on.
DISABLE_AFTER: Final = timedelta(hours=24)
_SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_FIELDS: Final = frozenset({"url", "events", "description"})
_PATCHABLE: Final = _FIELDS | {"status"}


class WebhookStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return _SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def retry_delay(attempts: int) -> timedelta:
    """The wait after the attempts-th failure in a row: 1 s, doubling, at most 10 minutes."""
    if attempts >= 20:  # 2**19 s is far past the cap already
        return LAST_RETRY
    delay: timedelta = FIRST_RETRY * 2 ** max(attempts - 1, 0)
    return min(delay, LAST_RETRY)


@attrs.frozen
class Webhook:
    """An endpoint and how far its deliveries have come.

    `position`: the feed position it is done with; every event after it is still to be sent
    (or skipped, when its type is not wanted). `attempts`, `failing_since`, `next_attempt_at`:
    the failures in a row at the event after position.
    """

    id: UUID
    url: str
    events: tuple[ChangeType, ...] | None  # None: every type, those to come included
    description: str | None
    status: WebhookStatus
    secret: str
    created_at: datetime
    updated_at: datetime
    position: int
    attempts: int = 0
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None

    def wants(self, kind: ChangeType) -> bool:
        return self.events is None or kind in self.events

    def failed(self, now: datetime) -> "Webhook":
        """The endpoint after one more failed attempt at now: its retry, or disabled."""
        since = self.failing_since or now
        attempts = self.attempts + 1
        status = WebhookStatus.DISABLED if now - since >= DISABLE_AFTER else self.status
        return attrs.evolve(
            self,
            attempts=attempts,
            failing_since=since,
            next_attempt_at=now + retry_delay(attempts),
            status=status,
        )


@attrs.frozen
class WebhookChanges:
    """What a create or a PATCH sets; None where it leaves the field alone."""

    url: str | None = None
    events: tuple[ChangeType, ...] | None = None
    all_events: bool = False  # events given as null or left out of a create: every type
    description: str | None = None
    clear_description: bool = False
    status: WebhookStatus | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any], *, create: bool) -> "WebhookChanges":
        errors = FieldErrors()
        errors.unknown(body, _FIELDS if create else _PATCHABLE)
        url = body.get("url")
        if create and "url" not in body:
            errors.add("url", "is required")
        elif "url" in body:
            problem = url_problem(url)
            if problem:
                errors.add("url", problem)
        events = None
        if body.get("events") is not None:
            events = _events(body["events"], errors)
        description = body.get("description")
        if description is not None and (
            not isinstance(description, str) or len(description) > DESCRIPTION_MAX
        ):
            errors.add("description", f"must be text of at most {DESCRIPTION_MAX} characters")
        status = body.get("status")
        if "status" in body and (not isinstance(status, str) or status not in set(WebhookStatus)):
            errors.add("status", "must be active or disabled")
        errors.raise_any()
        return cls(
            url=url,
            events=events,
            # Left out of a create, or null: every type.
            all_events=events is None and (create or "events" in body),
            description=description,
            clear_description="description" in body and description is None,
            status=WebhookStatus(status) if status is not None else None,
        )

    def applied(self, webhook: Webhook, now: datetime) -> Webhook:
        changed = attrs.evolve(
            webhook,
            url=self.url or webhook.url,
            events=None if self.all_events else (self.events or webhook.events),
            description=None
            if self.clear_description
            else (self.description if self.description is not None else webhook.description),
            updated_at=now,
        )
        if self.status is WebhookStatus.ACTIVE and webhook.status is WebhookStatus.DISABLED:
            # Turned back on: it resumes at its position, with a clean slate of failures.
            changed = attrs.evolve(
                changed,
                status=WebhookStatus.ACTIVE,
                attempts=0,
                failing_since=None,
                next_attempt_at=None,
            )
        elif self.status is not None:
            changed = attrs.evolve(changed, status=self.status)
        return changed


def url_problem(url: object) -> str | None:
    """What is wrong with a target URL's form, or None (its addresses are checked apart)."""
    if not isinstance(url, str) or not url or len(url) > URL_MAX:
        return f"must be an absolute URL of at most {URL_MAX} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        return "must be an absolute URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an https URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials: deliveries are signed instead"
    if parts.fragment or not url.isprintable() or " " in url:
        return "must be an absolute URL without a fragment or spaces"
    return None


def _events(value: object, errors: FieldErrors) -> tuple[ChangeType, ...] | None:
    known = {kind.value: kind for kind in ChangeType}
    if not isinstance(value, list) or not value:
        errors.add("events", "must be a non-empty list of event types")
        return None
    chosen: set[ChangeType] = set()
    for index, name in enumerate(value):
        if not isinstance(name, str) or name not in known:
            listed = ", ".join(known)
            errors.add(f"events[{index}]", f"must be one of {listed}")
        elif known[name] in chosen:
            errors.add(f"events[{index}]", "is already in the list")
        else:
            chosen.add(known[name])
    return tuple(kind for kind in ChangeType if kind in chosen)


def message_id(webhook_id: UUID, sequence: int) -> str:
    """The webhook-id of an event's delivery to an endpoint, the same on every retry."""
    return f"msg_{webhook_id.hex}_{sequence}"
