"""The SQL the floor and the FastAPI reference send: the service's statements, written out.

One copy for both, so the three servers do the same database work: autocommit, one statement
(one round trip) per request, a write's stock ledger entry and change event in the same
statement, rows as tuples in COLUMNS order, ids minted as UUIDv7 in Python like the
service's (their time order keeps inserts at the right edge of the primary key).
"""

import os
import time
import unicodedata
import uuid

COLUMNS = "id, sku, name, description, price_cents, quantity, created_at, updated_at, version"
GET = f"SELECT {COLUMNS} FROM products WHERE id = %s"
FIRST_PAGE = f"SELECT {COLUMNS} FROM products ORDER BY created_at, id LIMIT %s"
NEXT_PAGE = (
    f"SELECT {COLUMNS} FROM products WHERE (created_at, id) > (%s, %s) "
    "ORDER BY created_at, id LIMIT %s"
)
_LEDGER = (
    "INSERT INTO stock_ledger (id, product_id, delta, reason, reference, quantity_after,"
    " version_after, created_at)"
)
_STATE = "sku, name, description, price_cents, quantity, created_at, updated_at"
_CHANGE = f"INSERT INTO product_changes (type, product_id, version, occurred_at, {_STATE})"


def _change(kind: str, written: str) -> str:
    """The change feed's event for the product a CTE wrote (the service's outbox row)."""
    return f"{_CHANGE} SELECT '{kind}', id, version, updated_at, {_STATE} FROM {written}"


# A create with its "initial" ledger entry and its change event, in one statement.
# Parameters: the product's COLUMNS but version, its folded name, then the entry's id.
INSERT = (
    f"WITH created AS (INSERT INTO products ({COLUMNS}, name_folded)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1, %s)"
    f" RETURNING {COLUMNS}), "
    f"entry AS ({_LEDGER} SELECT %s, id, quantity, 'initial', NULL, quantity, 1, updated_at"
    " FROM created WHERE quantity <> 0) " + _change("product.created", "created")
)
# A replace with its "set" ledger entry when the quantity changed (the old quantity read
# under the row's lock) and its change event, in one statement. Parameters: the id, sku,
# name, its folded name, description, price_cents, quantity, updated_at, (the expected
# version,) then the entry's id.
_RETURNED = ", ".join(f"products.{c}" for c in COLUMNS.split(", "))


def _update(at_version: bool) -> str:
    version = " AND products.version = %s" if at_version else ""
    return (
        "WITH old AS (SELECT id, quantity FROM products WHERE id = %s FOR UPDATE), "
        "replaced AS (UPDATE products SET sku = %s, name = %s, name_folded = %s, description = %s,"
        " price_cents = %s, quantity = %s, updated_at = %s, version = products.version + 1"
        f" FROM old WHERE products.id = old.id{version}"
        f" RETURNING {_RETURNED}, old.quantity AS old_quantity), "
        f"entry AS ({_LEDGER} SELECT %s, id, quantity - old_quantity, 'set', NULL, quantity,"
        " version, updated_at FROM replaced WHERE quantity <> old_quantity), "
        f"change AS ({_change('product.updated', 'replaced')}) "
        f"SELECT {COLUMNS} FROM replaced"
    )


UPDATE_ANY = _update(at_version=False)
UPDATE_AT_VERSION = _update(at_version=True)
PING = "SELECT 1"


def folded(name: str) -> str:
    """The name as the service stores it for `q` (cme_domain.listing.search_fold)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10)) & (2**80 - 1)
    value = value & ~(0xF << 76) | 0x7 << 76
    return uuid.UUID(int=value & ~(0x3 << 62) | 0x2 << 62)
