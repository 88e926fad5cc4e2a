"""What webhook delivery needs from outside the domain: the endpoints' store, a sender, a
check of target addresses."""

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Protocol
from uuid import UUID

import attrs

from cme_domain.webhooks import Webhook

# How a sender's error begins when it made no attempt: the target's address is not allowed.
REFUSED: Final = "refused"


@attrs.frozen
class Answer:
    """What one POST to an endpoint came to."""

    status_code: int | None  # None: no HTTP answer at all
    error: str | None  # why there was no answer (or no attempt: a refused address)
    seconds: float

    @property
    def acknowledged(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@attrs.frozen
class Delivery:
    """One attempt, as the deliveries log keeps it."""

    webhook_id: UUID
    sequence: int  # the event's feed position
    message_id: str  # the webhook-id header: the same on every attempt at the event
    attempted_at: datetime
    status_code: int | None
    error: str | None
    seconds: float

    @property
    def outcome(self) -> str:
        """delivered (a 2xx), refused (the target's address was not allowed), or failed."""
        if self.status_code is not None and 200 <= self.status_code < 300:
            return "delivered"
        if self.error is not None and self.error.startswith(REFUSED):
            return "refused"
        return "failed"


class WebhookSender(Protocol):
    async def send(self, url: str, secret: str, message_id: str, body: bytes) -> Answer:
        """POST body to url with the Standard Webhooks headers signed by secret.

        Never raises for the endpoint's sake: a refused address, a broken connection or no
        answer within DELIVERY_TIMEOUT_SECONDS is an Answer with an error.
        """


class TargetCheck(Protocol):
    async def refusal(self, url: str) -> str | None:
        """Why deliveries to url would be refused now (its scheme, or an address its host
        resolves to), or None."""


class WebhookRepository(Protocol):
    """The endpoints, who delivers to each (a lease), and their deliveries log.

    The lease is the only way two workers agree: whoever holds it unexpired delivers, and the
    writes that move an endpoint's position or count its failures succeed only for its holder.
    """

    async def add(self, webhook: Webhook) -> None: ...

    async def get(self, webhook_id: UUID) -> Webhook | None: ...

    async def list(self) -> Sequence[Webhook]:
        """Every endpoint, oldest first (there are at most WEBHOOKS_MAX)."""

    async def save(self, webhook: Webhook, *, resumed: bool) -> bool:
        """Write its url, events, description, status and secret; resumed also clears its
        failures. False if it no longer exists."""

    async def delete(self, webhook_id: UUID) -> bool: ...

    async def due(self, now: datetime, end: int) -> Sequence[UUID]:
        """The active endpoints behind `end` whose retry time has come and that no worker holds."""

    async def claim(
        self, webhook_id: UUID, owner: str, now: datetime, until: datetime
    ) -> Webhook | None:
        """Take (or renew) the endpoint's lease for owner until `until`, if it is active, its
        retry time has come, and it is free or already owner's; the endpoint then, or None."""

    async def advance(
        self, webhook_id: UUID, owner: str, position: int, lease_until: datetime
    ) -> Webhook | None:
        """Move the position (events acknowledged or skipped), clear the failures, renew the
        lease; the endpoint then, as a PATCH or a new secret may have left it. None if owner
        no longer holds the lease or the endpoint is no longer active."""

    async def acknowledged(
        self, delivery: Delivery, owner: str, lease_until: datetime
    ) -> Webhook | None:
        """Log a delivered attempt and move the position to its event, as advance() does, in
        one step. None as advance() says (the attempt is logged all the same)."""

    async def failed(self, webhook: Webhook, owner: str) -> bool:
        """Store webhook's attempts, failing_since and next_attempt_at (and disabled, if it
        is), and give the lease up. False if owner no longer held it."""

    async def release(self, webhook_id: UUID, owner: str) -> None: ...

    async def record(self, delivery: Delivery) -> None:
        """Log an attempt; nothing, if the endpoint has been deleted meanwhile."""

    async def deliveries(self, webhook_id: UUID, limit: int) -> Sequence[Delivery]:
        """The endpoint's newest attempts, newest first."""

    async def trim(self, keep: int, before: datetime) -> int:
        """Delete the attempts older than `before`, and all but each endpoint's newest `keep`;
        return how many went."""
