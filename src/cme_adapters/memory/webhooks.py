"""The in-memory webhook endpoints, their leases and their deliveries log."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import attrs

from cme_adapters.memory.store import InMemoryStore, Undo
from cme_domain.webhook_ports import Delivery
from cme_domain.webhooks import Webhook, WebhookStatus


@attrs.define
class InMemoryWebhookRepository:
    store: InMemoryStore
    undo: list[Undo]

    async def add(self, webhook: Webhook) -> None:
        self.store.webhooks[webhook.id] = webhook
        self.undo.append(lambda: self.store.webhooks.__delitem__(webhook.id))

    async def get(self, webhook_id: UUID) -> Webhook | None:
        return self.store.webhooks.get(webhook_id)

    async def list(self) -> Sequence[Webhook]:
        return sorted(self.store.webhooks.values(), key=lambda w: (w.created_at, w.id))

    async def save(self, webhook: Webhook, *, resumed: bool) -> bool:
        earlier = self.store.webhooks.get(webhook.id)
        if earlier is None:
            return False
        saved = attrs.evolve(
            earlier,
            url=webhook.url,
            events=webhook.events,
            description=webhook.description,
            status=webhook.status,
            secret=webhook.secret,
            updated_at=webhook.updated_at,
        )
        if resumed:
            saved = attrs.evolve(saved, attempts=0, failing_since=None, next_attempt_at=None)
        self._put(saved)
        return True

    async def delete(self, webhook_id: UUID) -> bool:
        earlier = self.store.webhooks.pop(webhook_id, None)
        if earlier is None:
            return False
        self.store.leases.pop(webhook_id, None)
        self.store.deliveries[:] = [d for d in self.store.deliveries if d.webhook_id != webhook_id]
        self.undo.append(lambda: self.store.webhooks.__setitem__(webhook_id, earlier))
        return True

    async def due(self, now: datetime, end: int) -> Sequence[UUID]:
        return [w.id for w in await self.list() if w.position < end and self._claimable(w, "", now)]

    async def claim(
        self, webhook_id: UUID, owner: str, now: datetime, until: datetime
    ) -> Webhook | None:
        webhook = self.store.webhooks.get(webhook_id)
        if webhook is None or not self._claimable(webhook, owner, now):
            return None
        self.store.leases[webhook_id] = (owner, until)
        return webhook

    async def advance(
        self, webhook_id: UUID, owner: str, position: int, lease_until: datetime
    ) -> Webhook | None:
        webhook = self._held(webhook_id, owner)
        if webhook is None or webhook.status is not WebhookStatus.ACTIVE:
            return None
        moved = attrs.evolve(
            webhook, position=position, attempts=0, failing_since=None, next_attempt_at=None
        )
        self._put(moved)
        self.store.leases[webhook_id] = (owner, lease_until)
        return moved

    async def acknowledged(
        self, delivery: Delivery, owner: str, lease_until: datetime
    ) -> Webhook | None:
        await self.record(delivery)
        return await self.advance(delivery.webhook_id, owner, delivery.sequence, lease_until)

    async def failed(self, webhook: Webhook, owner: str) -> bool:
        stored = self._held(webhook.id, owner)
        if stored is None:
            return False
        disabled = webhook.status is WebhookStatus.DISABLED
        self._put(
            attrs.evolve(
                stored,
                attempts=webhook.attempts,
                failing_since=webhook.failing_since,
                next_attempt_at=webhook.next_attempt_at,
                status=WebhookStatus.DISABLED if disabled else stored.status,
            )
        )
        del self.store.leases[webhook.id]
        return True

    async def release(self, webhook_id: UUID, owner: str) -> None:
        if self._held(webhook_id, owner) is not None:
            del self.store.leases[webhook_id]

    async def record(self, delivery: Delivery) -> None:
        if delivery.webhook_id in self.store.webhooks:
            self.store.deliveries.append(delivery)

    async def deliveries(self, webhook_id: UUID, limit: int) -> Sequence[Delivery]:
        mine = [d for d in reversed(self.store.deliveries) if d.webhook_id == webhook_id]
        return mine[:limit]

    async def trim(self, keep: int, before: datetime) -> int:
        kept: list[Delivery] = []
        counts: dict[UUID, int] = {}
        for delivery in reversed(self.store.deliveries):
            counts[delivery.webhook_id] = counts.get(delivery.webhook_id, 0) + 1
            if delivery.attempted_at >= before and counts[delivery.webhook_id] <= keep:
                kept.append(delivery)
        removed = len(self.store.deliveries) - len(kept)
        self.store.deliveries[:] = reversed(kept)
        return removed

    def _claimable(self, webhook: Webhook, owner: str, now: datetime) -> bool:
        holder, until = self.store.leases.get(webhook.id, ("", now))
        return (
            webhook.status is WebhookStatus.ACTIVE
            and (webhook.next_attempt_at is None or webhook.next_attempt_at <= now)
            and (until <= now or holder == owner)
        )

    def _held(self, webhook_id: UUID, owner: str) -> Webhook | None:
        holder, _ = self.store.leases.get(webhook_id, ("", None))
        return self.store.webhooks.get(webhook_id) if holder == owner and owner else None

    def _put(self, webhook: Webhook) -> None:
        earlier = self.store.webhooks[webhook.id]
        self.store.webhooks[webhook.id] = webhook
        self.undo.append(lambda: self.store.webhooks.__setitem__(webhook.id, earlier))
