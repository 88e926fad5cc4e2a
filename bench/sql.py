"""The SQL the floor and the FastAPI reference send: the service's statements, written out.

One copy for both, so the three servers do the same database work: autocommit, one statement
(one round trip) per request, rows as tuples in COLUMNS order, ids minted as UUIDv7 in Python
like the service's (their time order keeps inserts at the right edge of the primary key).
"""

import os
import time
import uuid

COLUMNS = "id, sku, name, description, price_cents, quantity, created_at, updated_at, version"
GET = f"SELECT {COLUMNS} FROM products WHERE id = %s"
FIRST_PAGE = f"SELECT {COLUMNS} FROM products ORDER BY created_at, id LIMIT %s"
NEXT_PAGE = (
    f"SELECT {COLUMNS} FROM products WHERE (created_at, id) > (%s, %s) "
    "ORDER BY created_at, id LIMIT %s"
)
INSERT = f"INSERT INTO products ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1)"
UPDATE = (
    "UPDATE products SET sku = %s, name = %s, description = %s, price_cents = %s, "
    "quantity = %s, updated_at = %s, version = version + 1 WHERE id = %s"
)
RETURNING = f" RETURNING {COLUMNS}"
UPDATE_ANY = UPDATE + RETURNING
UPDATE_AT_VERSION = UPDATE + " AND version = %s" + RETURNING
PING = "SELECT 1"


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10)) & (2**80 - 1)
    value = value & ~(0xF << 76) | 0x7 << 76
    return uuid.UUID(int=value & ~(0x3 << 62) | 0x2 << 62)
