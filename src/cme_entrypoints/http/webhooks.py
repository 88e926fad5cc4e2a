"""The /webhooks routes: endpoints the change feed is pushed to, and their deliveries log."""

import re
from typing import Any, Final
from uuid import UUID

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cme_domain.changes import ChangeType
from cme_domain.webhook_ports import Delivery
from cme_domain.webhook_use_cases import (
    ChangeWebhook,
    CreateWebhook,
    DeleteWebhook,
    GetWebhook,
    ListDeliveries,
    ListWebhooks,
    RotateSecret,
)
from cme_domain.webhooks import (
    DELIVERIES_PAGE_DEFAULT,
    DELIVERIES_PAGE_MAX,
    Webhook,
)
from cme_entrypoints.http.body import read_json_object
from cme_entrypoints.http.problems import Problem
from cme_entrypoints.http.products import JSON, MERGE_PATCH, by_method
from cme_entrypoints.http.representation import json_response
from cme_entrypoints.http.routing import WEBHOOK_PATH, WEBHOOKS_PATH

_DIGITS: Final = re.compile(r"[0-9]{1,3}")


def webhook_json(webhook: Webhook, *, secret: bool = False) -> dict[str, Any]:
    """The endpoint as every answer shows it; the secret only where it was just made."""
    body = {
        "id": webhook.id,
        "url": webhook.url,
        "events": [kind.value for kind in (webhook.events or ChangeType)],
        "description": webhook.description,
        "status": webhook.status.value,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
        "failing_since": webhook.failing_since,
        "next_attempt_at": webhook.next_attempt_at,
    }
    if secret:
        body["secret"] = webhook.secret
    return body


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "event_sequence": delivery.sequence,
        "message_id": delivery.message_id or None,
        "attempted_at": delivery.attempted_at,
        "status_code": delivery.status_code,
        "error": delivery.error,
        "duration_ms": round(delivery.seconds * 1000, 3),
    }


@attrs.frozen
class WebhookRoutes:
    create_webhook: CreateWebhook
    list_webhooks: ListWebhooks
    get_webhook: GetWebhook
    change_webhook: ChangeWebhook
    rotate_secret: RotateSecret
    delete_webhook: DeleteWebhook
    list_deliveries: ListDeliveries

    def routes(self) -> list[Route]:
        return [
            by_method(WEBHOOKS_PATH, GET=self.list, POST=self.create),
            by_method(WEBHOOK_PATH, GET=self.get, PATCH=self.change, DELETE=self.delete),
            by_method(f"{WEBHOOK_PATH}/rotate-secret", POST=self.rotate),
            by_method(f"{WEBHOOK_PATH}/deliveries", GET=self.deliveries),
        ]

    async def create(self, request: Request) -> Response:
        webhook = await self.create_webhook(await read_json_object(request, JSON))
        headers = {"Location": f"{WEBHOOKS_PATH}/{webhook.id}"}
        return json_response(webhook_json(webhook, secret=True), 201, headers)

    async def list(self, request: Request) -> Response:
        webhooks = await self.list_webhooks()
        return json_response({"items": [webhook_json(w) for w in webhooks]})

    async def get(self, request: Request) -> Response:
        return json_response(webhook_json(await self.get_webhook(_id(request))))

    async def change(self, request: Request) -> Response:
        body = await read_json_object(request, MERGE_PATCH, JSON)
        return json_response(webhook_json(await self.change_webhook(_id(request), body)))

    async def rotate(self, request: Request) -> Response:
        webhook = await self.rotate_secret(_id(request))
        return json_response(webhook_json(webhook, secret=True))

    async def delete(self, request: Request) -> Response:
        await self.delete_webhook(_id(request))
        return Response(status_code=204)

    async def deliveries(self, request: Request) -> Response:
        limit = _limit(request.query_params.get("limit"))
        attempts = await self.list_deliveries(_id(request), limit)
        return json_response({"items": [delivery_json(d) for d in attempts]})


def _id(request: Request) -> UUID:
    webhook_id: UUID = request.path_params["id"]
    return webhook_id


def _limit(raw: str | None) -> int:
    if raw is None:
        return DELIVERIES_PAGE_DEFAULT
    if _DIGITS.fullmatch(raw) and 1 <= int(raw) <= DELIVERIES_PAGE_MAX:
        return int(raw)
    message = f"must be an integer from 1 to {DELIVERIES_PAGE_MAX}"
    errors = [{"field": "limit", "message": message}]
    raise Problem(422, "the query is not valid", slug="validation-error", errors=errors)
