"""Page cursors in the service's format (signed keyset), so a cursor works on all three servers."""

import base64
import hashlib
import hmac
import json
import os
from datetime import datetime
from uuid import UUID

KEY = hashlib.sha256(os.environ.get("CURSOR_SECRET", "fastapi-reference").encode()).digest()
SORT = ["created_at", "asc"]


class BadCursor(ValueError):
    pass


def encode(created_at: datetime, id_: UUID) -> str:
    payload = json.dumps([*SORT, created_at.isoformat(), id_.hex], separators=(",", ":"))
    data = payload.encode()
    return f"{_b64(data)}.{_b64(_sign(data))}"


def decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        body, signature = cursor.split(".")
        data = _unb64(body)
        if not hmac.compare_digest(_unb64(signature), _sign(data)):
            raise BadCursor("the cursor was not issued by this service")
        sort, order, value, id_hex = json.loads(data)
        if [sort, order] != SORT:
            raise BadCursor("the cursor belongs to a different sort or order")
        return datetime.fromisoformat(value), UUID(hex=id_hex)
    except BadCursor:
        raise
    except (ValueError, TypeError):  # bad base64, JSON or UUID, or the wrong number of parts
        raise BadCursor("the cursor is malformed") from None


def _sign(data: bytes) -> bytes:
    return hmac.new(KEY, data, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
