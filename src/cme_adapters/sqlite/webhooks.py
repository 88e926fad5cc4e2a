"""The webhook repository on SQLAlchemy's engine (the SQLite adapter): one statement a step."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Executable

from cme_adapters.sql import webhook_statements as statements
from cme_adapters.sql.codecs import (
    delivery_of,
    delivery_values,
    failure_values,
    webhook_of,
    webhook_settings,
    webhook_values,
)
from cme_adapters.sqlite.repository import Runner
from cme_domain.webhook_ports import Delivery
from cme_domain.webhooks import Webhook


class SqlWebhookRepository:
    def __init__(self, run: Runner, together: Runner) -> None:
        self._run = run
        self._together = together

    async def add(self, webhook: Webhook) -> None:
        await self._count(statements.INSERT, webhook_values(webhook))

    async def get(self, webhook_id: UUID) -> Webhook | None:
        rows = await self._rows(statements.GET, {"hook": webhook_id})
        return webhook_of(rows[0]) if rows else None

    async def list(self) -> Sequence[Webhook]:
        return [webhook_of(row) for row in await self._rows(statements.LIST, {})]

    async def save(self, webhook: Webhook, *, resumed: bool) -> bool:
        params = {f"new_{k}": v for k, v in webhook_settings(webhook).items()}
        sql = statements.SAVE_RESUMED if resumed else statements.SAVE
        return bool(await self._count(sql, {"hook": webhook.id, **params}))

    async def delete(self, webhook_id: UUID) -> bool:
        return bool(await self._count(statements.DELETE, {"hook": webhook_id}))

    async def due(self, now: datetime, end: int) -> Sequence[UUID]:
        rows = await self._rows(statements.DUE, {"now": now, "end": end})
        return [row[0] for row in rows]

    async def claim(
        self, webhook_id: UUID, owner: str, now: datetime, until: datetime
    ) -> Webhook | None:
        params = {"hook": webhook_id, "owner": owner, "now": now, "until": until}
        rows = await self._rows(statements.CLAIM, params)
        return webhook_of(rows[0]) if rows else None

    async def advance(
        self, webhook_id: UUID, owner: str, position: int, lease_until: datetime
    ) -> Webhook | None:
        params = {"hook": webhook_id, "owner": owner, "to_position": position}
        rows = await self._rows(statements.ADVANCE, {**params, "until": lease_until})
        return webhook_of(rows[0]) if rows else None

    async def acknowledged(
        self, delivery: Delivery, owner: str, lease_until: datetime
    ) -> Webhook | None:
        moved = {"hook": delivery.webhook_id, "owner": owner, "until": lease_until}

        def acknowledged(db: Connection) -> Webhook | None:
            db.execute(statements.RECORD, delivery_values(delivery))
            params = {**moved, "to_position": delivery.sequence}
            row = db.execute(statements.ADVANCE, params).first()
            return None if row is None else webhook_of(row)

        return await self._together(acknowledged)

    async def failed(self, webhook: Webhook, owner: str) -> bool:
        return bool(await self._count(statements.FAILED, failure_values(webhook, owner)))

    async def release(self, webhook_id: UUID, owner: str) -> None:
        await self._count(statements.RELEASE, {"hook": webhook_id, "owner": owner})

    async def record(self, delivery: Delivery) -> None:
        await self._count(statements.RECORD, delivery_values(delivery))

    async def deliveries(self, webhook_id: UUID, limit: int) -> Sequence[Delivery]:
        rows = await self._rows(statements.DELIVERIES, {"hook": webhook_id, "limit": limit})
        return [delivery_of(row) for row in rows]

    async def trim(self, keep: int, before: datetime) -> int:
        def trim(db: Connection) -> int:
            removed: int = db.execute(statements.TRIM_OLD, {"before": before}).rowcount
            for (webhook_id,) in db.execute(statements.IDS):
                params = {"hook": webhook_id, "keep": keep}
                removed += db.execute(statements.TRIM_EXCESS, params).rowcount
            return removed

        return await self._run(trim)

    async def _rows(self, sql: Executable, params: dict[str, Any]) -> Sequence[Any]:
        return await self._run(lambda db: list(db.execute(sql, params).all()))

    async def _count(self, sql: Executable, params: dict[str, Any]) -> int:
        def count(db: Connection) -> int:
            affected: int = db.execute(sql, params).rowcount
            return affected

        return await self._run(count)
