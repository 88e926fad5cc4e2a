"""Delivering the feed to an endpoint: its events in order, one at a time, each acknowledged."""

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import attrs

from cme_domain.changes import Change, ChangeFeed
from cme_domain.ports import Clock, UnitOfWorkFactory
from cme_domain.webhook_ports import Delivery, WebhookRepository, WebhookSender
from cme_domain.webhooks import (
    DELIVERIES_KEPT,
    DELIVERIES_RETENTION,
    DELIVERY_TIMEOUT_SECONDS,
    Webhook,
    WebhookStatus,
    message_id,
)

# Far longer than one attempt may take: a holder that renews before each send can never
# be overtaken by another worker while that send is in flight.
LEASE: Final = timedelta(seconds=60)
_RENEW_BEFORE: Final = timedelta(seconds=DELIVERY_TIMEOUT_SECONDS * 3)
_PAGE: Final = 100


def _ignore(delivery: Delivery) -> None:
    return None


@attrs.frozen
class DueWebhooks:
    """The endpoints a worker should deliver to now: behind the feed, retry time come, unheld."""

    uow: UnitOfWorkFactory
    feed: ChangeFeed
    clock: Clock

    async def __call__(self) -> Sequence[UUID]:
        end = (await self.feed.read(None, 1)).end
        async with self.uow(atomic=False) as uow:
            return await uow.webhooks.due(self.clock.now(), end)


@attrs.frozen
class WebhookSweep:
    trimmed: int  # attempts deleted from the log
    lag: dict[UUID, float]  # each active endpoint's: the age of its oldest event still to send
    endpoints: dict[WebhookStatus, int]  # how many endpoints are in each status


@attrs.frozen
class SweepWebhooks:
    """Tidy the deliveries log, and say how far behind the feed each active endpoint is."""

    uow: UnitOfWorkFactory
    feed: ChangeFeed
    clock: Clock

    async def __call__(self) -> WebhookSweep:
        now = self.clock.now()
        async with self.uow(atomic=False) as uow:
            trimmed = await uow.webhooks.trim(DELIVERIES_KEPT, now - DELIVERIES_RETENTION)
            webhooks = await uow.webhooks.list()
        lag = {}
        endpoints = dict.fromkeys(WebhookStatus, 0)
        for webhook in webhooks:
            endpoints[webhook.status] += 1
            if webhook.status is WebhookStatus.ACTIVE:
                oldest = (await self.feed.read(webhook.position, 1)).items
                behind = (now - oldest[0].occurred_at).total_seconds() if oldest else 0.0
                lag[webhook.id] = max(behind, 0.0)
        return WebhookSweep(trimmed, lag, endpoints)


@attrs.frozen
class DeliverWebhook:
    """One worker's turn at one endpoint: take its lease, send until it is caught up or an
    attempt fails, give the lease back.

    The position moves only after an acknowledgement, and only while this worker holds the
    lease: a crash anywhere sends the unacknowledged event again, and a 2xx is sent again
    only if the write that records it never happened (the database went away meanwhile).
    """

    uow: UnitOfWorkFactory
    feed: ChangeFeed
    sender: WebhookSender
    clock: Clock
    render: Callable[[Change], bytes]  # the event exactly as the feed's answer shows it
    owner: str  # this worker, unique over every pod
    attempted: Callable[[Delivery], None] = _ignore

    async def __call__(self, webhook_id: UUID) -> int:
        """How many events were acknowledged."""
        acknowledged = 0
        while True:
            async with self._hooks() as hooks:
                now = self.clock.now()
                webhook = await hooks.claim(webhook_id, self.owner, now, now + LEASE)
            if webhook is None:
                return acknowledged
            try:
                sent, position = await self._deliver(webhook)
            except BaseException:
                # The database went away, or the service is stopping: give the endpoint up
                # now if possible, or the lease runs out and another worker goes on from it.
                with contextlib.suppress(Exception):
                    async with self._hooks() as hooks:
                        await hooks.release(webhook_id, self.owner)
                raise
            acknowledged += sent
            if position is None:
                return acknowledged
            async with self._hooks() as hooks:
                await hooks.release(webhook_id, self.owner)
            # An event committed while the lease was given up would otherwise wait for the
            # worker's next look; look once more.
            after = await self.feed.read(position, 1)
            if not after.items:
                return acknowledged

    async def _deliver(self, webhook: Webhook) -> tuple[int, int | None]:
        """Send what is due: the events acknowledged, and the position reached (None once the
        lease is given up or lost)."""
        sent = 0
        stored = position = webhook.position
        lease_until = self.clock.now() + LEASE
        while True:
            batch = await self.feed.read(position, _PAGE)
            if position < batch.pruned_through:
                # Retention deleted events this endpoint never got (it was disabled for longer
                # than the feed keeps them): say so in its log, and go on after the gap.
                await self._log_gap(webhook, position, batch.pruned_through)
                position = batch.pruned_through
            for change in batch.items:
                if not webhook.wants(change.type):
                    position = change.sequence
                    continue
                now = self.clock.now()
                if stored != position or now + _RENEW_BEFORE > lease_until:
                    lease_until = now + LEASE
                    moved = await self._advance(webhook.id, position, lease_until)
                    if moved is None:
                        return sent, None
                    webhook, stored = moved, position
                delivery = await self._send(webhook, change)
                if delivery.outcome != "delivered":
                    failed = attrs.evolve(webhook, position=position).failed(self.clock.now())
                    async with self._hooks() as hooks:
                        await hooks.record(delivery)
                        await hooks.failed(failed, self.owner)
                    return sent, None
                position, sent = change.sequence, sent + 1
                lease_until = self.clock.now() + LEASE
                async with self._hooks() as hooks:
                    moved = await hooks.acknowledged(delivery, self.owner, lease_until)
                if moved is None:
                    return sent, None
                # As it is now: a PATCH or a new secret applies from the next event on.
                webhook, stored = moved, position
            if stored != position:
                moved = await self._advance(webhook.id, position, self.clock.now() + LEASE)
                if moved is None:
                    return sent, None
                webhook, stored = moved, position
            if len(batch.items) < _PAGE:
                return sent, position

    async def _send(self, webhook: Webhook, change: Change) -> Delivery:
        msg = message_id(webhook.id, change.sequence)
        at = self.clock.now()
        answer = await self.sender.send(webhook.url, webhook.secret, msg, self.render(change))
        delivery = Delivery(
            webhook.id,
            change.sequence,
            msg,
            at,
            answer.status_code,
            answer.error,
            answer.seconds,
        )
        self.attempted(delivery)
        return delivery

    async def _log_gap(self, webhook: Webhook, position: int, through: int) -> None:
        error = f"events {position + 1} to {through} were deleted by retention before delivery"
        gap = Delivery(webhook.id, through, "", self.clock.now(), None, error, 0.0)
        async with self._hooks() as hooks:
            await hooks.record(gap)

    async def _advance(
        self, webhook_id: UUID, position: int, lease_until: datetime
    ) -> Webhook | None:
        async with self._hooks() as hooks:
            return await hooks.advance(webhook_id, self.owner, position, lease_until)

    @contextlib.asynccontextmanager
    async def _hooks(self) -> AsyncIterator[WebhookRepository]:
        # A unit of work per statement: none is held while an endpoint takes its time to answer.
        async with self.uow(atomic=False) as uow:
            yield uow.webhooks
