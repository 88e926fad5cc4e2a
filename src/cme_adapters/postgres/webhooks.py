"""The webhook repository on psycopg: one compiled statement a step (webhook_statements.py)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Final
from uuid import UUID

from cme_adapters.postgres.compiled import compiled
from cme_adapters.postgres.repository import Session
from cme_adapters.sql import webhook_statements as statements
from cme_adapters.sql.codecs import (
    delivery_of,
    delivery_values,
    failure_values,
    webhook_of,
    webhook_settings,
    webhook_values,
)
from cme_domain.webhook_ports import Delivery
from cme_domain.webhooks import Webhook

_INSERT: Final = compiled(statements.INSERT)
_GET: Final = compiled(statements.GET)
_LIST: Final = compiled(statements.LIST)
_IDS: Final = compiled(statements.IDS)
_SAVE: Final = compiled(statements.SAVE)
_SAVE_RESUMED: Final = compiled(statements.SAVE_RESUMED)
_DELETE: Final = compiled(statements.DELETE)
_DUE: Final = compiled(statements.DUE)
_CLAIM: Final = compiled(statements.CLAIM)
_ADVANCE: Final = compiled(statements.ADVANCE)
_FAILED: Final = compiled(statements.FAILED)
_RELEASE: Final = compiled(statements.RELEASE)
_RECORD: Final = compiled(statements.RECORD)
_ACKNOWLEDGED: Final = compiled(statements.ACKNOWLEDGED)
_DELIVERIES: Final = compiled(statements.DELIVERIES)
_TRIM_OLD: Final = compiled(statements.TRIM_OLD)
_TRIM_EXCESS: Final = compiled(statements.TRIM_EXCESS)


class PostgresWebhookRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def add(self, webhook: Webhook) -> None:
        await self._session.execute(_INSERT, webhook_values(webhook))

    async def get(self, webhook_id: UUID) -> Webhook | None:
        row = await self._session.fetch_one(_GET, {"hook": webhook_id}, writes=False)
        return None if row is None else webhook_of(row)

    async def list(self) -> Sequence[Webhook]:
        return [webhook_of(row) for row in await self._session.fetch_all(_LIST, {})]

    async def save(self, webhook: Webhook, *, resumed: bool) -> bool:
        params = {f"new_{k}": v for k, v in webhook_settings(webhook).items()}
        sql = _SAVE_RESUMED if resumed else _SAVE
        return bool(await self._session.execute(sql, {"hook": webhook.id, **params}))

    async def delete(self, webhook_id: UUID) -> bool:
        return bool(await self._session.execute(_DELETE, {"hook": webhook_id}))

    async def due(self, now: datetime, end: int) -> Sequence[UUID]:
        rows = await self._session.fetch_all(_DUE, {"now": now, "end": end})
        return [row[0] for row in rows]

    async def claim(
        self, webhook_id: UUID, owner: str, now: datetime, until: datetime
    ) -> Webhook | None:
        params = {"hook": webhook_id, "owner": owner, "now": now, "until": until}
        row = await self._session.fetch_one(_CLAIM, params, writes=True)
        return None if row is None else webhook_of(row)

    async def advance(
        self, webhook_id: UUID, owner: str, position: int, lease_until: datetime
    ) -> Webhook | None:
        params = {"hook": webhook_id, "owner": owner, "to_position": position}
        row = await self._session.fetch_one(_ADVANCE, {**params, "until": lease_until}, writes=True)
        return None if row is None else webhook_of(row)

    async def acknowledged(
        self, delivery: Delivery, owner: str, lease_until: datetime
    ) -> Webhook | None:
        params = {
            **delivery_values(delivery),
            "owner": owner,
            "to_position": delivery.sequence,
            "until": lease_until,
        }
        row = await self._session.fetch_one(_ACKNOWLEDGED, params, writes=True)
        return None if row is None else webhook_of(row)

    async def failed(self, webhook: Webhook, owner: str) -> bool:
        return bool(await self._session.execute(_FAILED, failure_values(webhook, owner)))

    async def release(self, webhook_id: UUID, owner: str) -> None:
        await self._session.execute(_RELEASE, {"hook": webhook_id, "owner": owner})

    async def record(self, delivery: Delivery) -> None:
        await self._session.execute(_RECORD, delivery_values(delivery))

    async def deliveries(self, webhook_id: UUID, limit: int) -> Sequence[Delivery]:
        rows = await self._session.fetch_all(_DELIVERIES, {"hook": webhook_id, "limit": limit})
        return [delivery_of(row) for row in rows]

    async def trim(self, keep: int, before: datetime) -> int:
        removed = await self._session.execute(_TRIM_OLD, {"before": before})
        for (webhook_id,) in await self._session.fetch_all(_IDS, {}):
            params = {"hook": webhook_id, "keep": keep}
            removed += await self._session.execute(_TRIM_EXCESS, params)
        return removed
