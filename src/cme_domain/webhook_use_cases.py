"""Managing webhook endpoints: create, read, change, rotate the secret, delete, read the log."""

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import attrs

from cme_domain.changes import ChangeFeed
from cme_domain.errors import FieldError, InvalidProduct, TooManyWebhooks, WebhookNotFound
from cme_domain.ports import Clock, IdGenerator, UnitOfWorkFactory
from cme_domain.webhook_ports import Delivery, TargetCheck
from cme_domain.webhooks import (
    WEBHOOKS_MAX,
    Webhook,
    WebhookChanges,
    WebhookStatus,
    new_secret,
)


async def _found(uow: UnitOfWorkFactory, webhook_id: UUID) -> Webhook:
    async with uow(atomic=False) as work:
        webhook = await work.webhooks.get(webhook_id)
    if webhook is None:
        raise WebhookNotFound(webhook_id)
    return webhook


async def _saved(uow: UnitOfWorkFactory, webhook: Webhook, *, resumed: bool = False) -> Webhook:
    async with uow(atomic=False) as work:
        if not await work.webhooks.save(webhook, resumed=resumed):
            raise WebhookNotFound(webhook.id)  # deleted meanwhile
    return webhook


async def _check_target(targets: TargetCheck, url: str) -> None:
    refusal = await targets.refusal(url)
    if refusal is not None:
        raise InvalidProduct([FieldError("url", refusal)])


@attrs.frozen
class CreateWebhook:
    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator
    targets: TargetCheck
    feed: ChangeFeed

    async def __call__(self, body: Mapping[str, Any]) -> Webhook:
        wanted = WebhookChanges.parse(body, create=True)
        assert wanted.url is not None  # parse requires it on a create
        await _check_target(self.targets, wanted.url)
        # Every event committed before now has its position by this read (the feed's promise),
        # so the endpoint gets exactly the events committed after it was made.
        start = (await self.feed.read(None, 1)).end
        now = self.clock.now()
        webhook = Webhook(
            id=self.ids.new_id(),
            url=wanted.url,
            events=wanted.events,
            description=wanted.description,
            status=WebhookStatus.ACTIVE,
            secret=new_secret(),
            created_at=now,
            updated_at=now,
            position=start,
        )
        async with self.uow(atomic=False) as uow:
            if len(await uow.webhooks.list()) >= WEBHOOKS_MAX:
                raise TooManyWebhooks(WEBHOOKS_MAX)
            await uow.webhooks.add(webhook)
        return webhook


@attrs.frozen
class ListWebhooks:
    uow: UnitOfWorkFactory

    async def __call__(self) -> Sequence[Webhook]:
        async with self.uow(atomic=False) as uow:
            return await uow.webhooks.list()


@attrs.frozen
class GetWebhook:
    uow: UnitOfWorkFactory

    async def __call__(self, webhook_id: UUID) -> Webhook:
        return await _found(self.uow, webhook_id)


@attrs.frozen
class ChangeWebhook:
    """A PATCH; turning a disabled endpoint back on resumes it where it stopped."""

    uow: UnitOfWorkFactory
    clock: Clock
    targets: TargetCheck

    async def __call__(self, webhook_id: UUID, body: Mapping[str, Any]) -> Webhook:
        wanted = WebhookChanges.parse(body, create=False)
        webhook = await _found(self.uow, webhook_id)
        if wanted.url is not None:
            await _check_target(self.targets, wanted.url)
        changed = wanted.applied(webhook, self.clock.now())
        resumed = webhook.status is WebhookStatus.DISABLED and (
            changed.status is WebhookStatus.ACTIVE
        )
        return await _saved(self.uow, changed, resumed=resumed)


@attrs.frozen
class RotateSecret:
    """A new secret at once: the next event delivered is signed with it (one already in
    flight is not), and the old one is void."""

    uow: UnitOfWorkFactory
    clock: Clock

    async def __call__(self, webhook_id: UUID) -> Webhook:
        webhook = await _found(self.uow, webhook_id)
        rotated = attrs.evolve(webhook, secret=new_secret(), updated_at=self.clock.now())
        return await _saved(self.uow, rotated)


@attrs.frozen
class DeleteWebhook:
    uow: UnitOfWorkFactory

    async def __call__(self, webhook_id: UUID) -> None:
        async with self.uow(atomic=False) as uow:
            if not await uow.webhooks.delete(webhook_id):
                raise WebhookNotFound(webhook_id)


@attrs.frozen
class ListDeliveries:
    uow: UnitOfWorkFactory

    async def __call__(self, webhook_id: UUID, limit: int) -> Sequence[Delivery]:
        await _found(self.uow, webhook_id)
        async with self.uow(atomic=False) as uow:
            return await uow.webhooks.deliveries(webhook_id, limit)
