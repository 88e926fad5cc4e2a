"""Opaque, tamper-evident page cursors: the keyset and the sort it belongs to, signed."""

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final
from uuid import UUID

import orjson

from cme_domain.listing import Keyset, SortField, SortOrder, SortValue
from cme_domain.product import NAME_MAX, PRICE_TEXT, VERSION_MAX

_SIGNATURE_BYTES = 16
_ID_HEX: Final = re.compile(r"[0-9a-f]{32}")
# What encode() writes for created_at: isoformat() of a UTC datetime, microseconds optional.
_TIMESTAMP: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?\+00:00"
)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_VERSION: Final = re.compile(r"[1-9][0-9]{0,9}")
# The stock ledger's one order, beside the product sorts: an entry's version_after.
LEDGER_SORT: Final = "version_after"
# Timestamps far from now cannot be a product's, and near year 1 or 9999 converting them
# between time zones overflows.
EARLIEST: Final = 1970
LATEST: Final = 9000


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

    def encode(self, keyset: Keyset, sort: SortField | str, order: SortOrder) -> str:
        payload = orjson.dumps([str(sort), order.value, _text(keyset.value), keyset.id.hex])
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, cursor: str, sort: SortField | str, order: SortOrder) -> Keyset:
        try:
            body, signature = cursor.split(".")
            payload, offered = _unb64(body), _unb64(signature)
        except (ValueError, binascii.Error):
            raise BadCursor("the cursor is malformed") from None
        if not hmac.compare_digest(offered, self._sign(payload)):
            raise BadCursor("the cursor was not issued by this service")
        try:
            fields = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise BadCursor("the cursor is malformed") from None
        # Signed is not the same as well-formed: a leaked or guessed key must not reach a 500,
        # so every value is checked as if it came straight from the client.
        if not (
            isinstance(fields, list) and len(fields) == 4 and all(type(f) is str for f in fields)
        ):
            raise BadCursor("the cursor is malformed")
        sort_name, order_name, value, id_hex = fields
        if (sort_name, order_name) != (str(sort), order.value):
            raise BadCursor("the cursor belongs to a different sort or order")
        if not _ID_HEX.fullmatch(id_hex):
            raise BadCursor("the cursor is malformed")
        return Keyset(_value(sort, value), UUID(hex=id_hex))

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _text(value: SortValue) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _value(sort: SortField | str, text: str) -> SortValue:
    """The sort value, only if a product (or a ledger entry) could have it; BadCursor otherwise."""
    if sort == LEDGER_SORT:
        if not _VERSION.fullmatch(text) or int(text) > VERSION_MAX:
            raise BadCursor("the cursor is malformed")
        return int(text)
    if sort is SortField.CREATED_AT:
        return _timestamp(text)
    if sort is SortField.PRICE:
        if not PRICE_TEXT.fullmatch(text):
            raise BadCursor("the cursor is malformed")
        return Decimal(text)
    if not 0 < len(text) <= NAME_MAX or "\x00" in text or _SURROGATE.search(text):
        raise BadCursor("the cursor is malformed")
    return text


def _timestamp(text: str) -> datetime:
    if not _TIMESTAMP.fullmatch(text):
        raise BadCursor("the cursor is malformed")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadCursor("the cursor is malformed") from None
    if moment.utcoffset() != timedelta(0) or not EARLIEST <= moment.year <= LATEST:
        raise BadCursor("the cursor is malformed")
    return moment


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
