"""GET /products/changes: the change feed, its opaque cursors and its long-poll `wait`."""

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any, Final

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cme_domain.changes import (
    FEED_PAGE_DEFAULT,
    FEED_PAGE_MAX,
    FEED_PAGE_MIN,
    WAIT_MAX_SECONDS,
    Change,
)
from cme_domain.feed import LatestCursor, ReadChanges
from cme_entrypoints.http.auth import caller_key
from cme_entrypoints.http.long_poll import LONG_POLL, WaitSlots, unless_gone
from cme_entrypoints.http.problems import Problem
from cme_entrypoints.http.representation import json_bytes, json_response, snapshot_json

LATEST: Final = "latest"
_PREFIX: Final = b"cme-feed:"
_POSITION: Final = re.compile(rb"(0|[1-9][0-9]{0,17})")
_DIGITS: Final = re.compile(r"[0-9]{1,4}")

FeedAnswered = Callable[[str, int], None]


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(_PREFIX + str(position).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    """The feed position a cursor stands for; ValueError for anything encode_cursor never wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the cursor is malformed") from None
    found = _POSITION.fullmatch(raw.removeprefix(_PREFIX)) if raw.startswith(_PREFIX) else None
    if found is None or encode_cursor(int(found[0])) != cursor:
        raise ValueError("the cursor is malformed")
    return int(found[0])


def change_json(change: Change) -> dict[str, Any]:
    return {
        "sequence": change.sequence,
        "type": change.type.value,
        "product_id": change.product_id,
        "version": change.version,
        "occurred_at": change.occurred_at,
        "product": None if change.product is None else snapshot_json(change.product),
    }


def event_body(change: Change) -> bytes:
    """An event as a webhook delivers it: the feed's item, byte for byte."""
    return json_bytes(change_json(change))


def _nothing_answered(result: str, lag: int) -> None:
    return None


@attrs.frozen
class FeedRoutes:
    read_changes: ReadChanges
    latest_cursor: LatestCursor
    wait_slots: WaitSlots
    # Told of every answer: what it held ("events", "empty", "latest", "abandoned": the client
    # left while it waited) and how many events newer than its next_cursor the feed already had.
    answered: FeedAnswered = _nothing_answered

    def routes(self) -> list[Route]:
        return [Route("/products/changes", self.changes, methods=["GET"])]

    async def changes(self, request: Request) -> Response:
        params = request.query_params
        limit, wait = _query(params.get("limit"), params.get("wait"))
        raw_cursor = params.get("cursor")
        if raw_cursor == LATEST:
            end = await self.latest_cursor()
            self.answered("latest", 0)
            return _page((), end)
        after = None
        if raw_cursor is not None:
            try:
                after = decode_cursor(raw_cursor)
            except ValueError as error:
                raise Problem(400, str(error), slug="bad-cursor") from None
        if wait:
            request.scope["state"][LONG_POLL] = True
            with self.wait_slots.taken(caller_key(request.scope)):
                waited = await unless_gone(self.read_changes(after, limit, wait), request.receive)
            if waited is None:
                self.answered("abandoned", 0)
                return _page((), after or 0)  # nobody reads it: uvicorn drops what is sent
            batch = waited
        else:
            batch = await self.read_changes(after, limit)
        self.answered("events" if batch.items else "empty", batch.lag(after))
        return _page(batch.items, batch.next_cursor(after))


def _page(items: tuple[Change, ...], position: int) -> Response:
    body = {"items": [change_json(c) for c in items], "next_cursor": encode_cursor(position)}
    return json_response(body, headers={"Cache-Control": "no-store"})


def _query(limit: str | None, wait: str | None) -> tuple[int, int]:
    errors = []
    chosen_limit, chosen_wait = FEED_PAGE_DEFAULT, 0
    if limit is not None:
        if _DIGITS.fullmatch(limit) and FEED_PAGE_MIN <= int(limit) <= FEED_PAGE_MAX:
            chosen_limit = int(limit)
        else:
            message = f"must be an integer from {FEED_PAGE_MIN} to {FEED_PAGE_MAX}"
            errors.append({"field": "limit", "message": message})
    if wait is not None:
        if _DIGITS.fullmatch(wait) and int(wait) <= WAIT_MAX_SECONDS:
            chosen_wait = int(wait)
        else:
            message = f"must be a whole number of seconds from 0 to {WAIT_MAX_SECONDS}"
            errors.append({"field": "wait", "message": message})
    if errors:
        raise Problem(422, "the query is not valid", slug="validation-error", errors=errors)
    return chosen_limit, chosen_wait
