"""Opaque, tamper-evident page cursors: the keyset and the sort it belongs to, signed."""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID

import orjson

from cme_domain.listing import Keyset, SortField, SortOrder, SortValue

_SIGNATURE_BYTES = 16


class BadCursor(ValueError):
    pass


class CursorCodec:
    """Signs and checks page cursors with CURSOR_SECRET's key or, without one, the database's.

    The database's key is made at random on first use and shared by every replica; it is read
    once, by the first request that needs it (`ready`), so start-up never waits on it.
    """

    def __init__(self, secret: bytes | None, load_secret: Callable[[], Awaitable[bytes]]) -> None:
        self._secret = secret or b""
        self._load_secret = load_secret

    async def ready(self) -> None:
        if not self._secret:
            self._secret = hashlib.sha256(await self._load_secret()).digest()

    def encode(self, keyset: Keyset, sort: SortField, order: SortOrder) -> str:
        payload = orjson.dumps([sort.value, order.value, _text(keyset.value), keyset.id.hex])
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, cursor: str, sort: SortField, order: SortOrder) -> Keyset:
        try:
            body, signature = cursor.split(".")
            payload = _unb64(body)
            if not hmac.compare_digest(_unb64(signature), self._sign(payload)):
                raise BadCursor("the cursor was not issued by this service")
            sort_name, order_name, value, id_hex = orjson.loads(payload)
        except (ValueError, binascii.Error, orjson.JSONDecodeError, TypeError):
            raise BadCursor("the cursor is malformed") from None
        if (sort_name, order_name) != (sort.value, order.value):
            raise BadCursor("the cursor belongs to a different sort or order")
        try:
            return Keyset(_value(sort, value), UUID(hex=id_hex))
        except (ValueError, InvalidOperation):
            raise BadCursor("the cursor is malformed") from None

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _text(value: SortValue) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _value(sort: SortField, text: str) -> SortValue:
    if sort is SortField.CREATED_AT:
        return datetime.fromisoformat(text)
    if sort is SortField.PRICE:
        return Decimal(text)
    return text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
