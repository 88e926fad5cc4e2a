"""The change feed's statements: product writes that record their event, sequencing, reading.

`with_change` is the one way a product-writing statement records its change on PostgreSQL: the
write becomes a data-modifying CTE and the event is inserted from the rows it returned, in the
same statement (still one round trip). SQLite has no writable CTEs: its repository inserts
`INSERT_CHANGE` in the write's transaction instead.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    CTE,
    ColumnElement,
    Delete,
    Insert,
    Select,
    Update,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)

from cme_adapters.sql.codecs import cents, price_of
from cme_adapters.sql.schema import change_feed_horizon, product_changes
from cme_domain.changes import Change, ChangeType
from cme_domain.product import Product

# Each worker NOTIFYs this channel after its writes commit (postgres/listener.py).
CHANNEL: Final = "cme_product_changes"
# pg_advisory_xact_lock key serialising the sequencer and retention (any fixed bigint will do).
SEQUENCER_LOCK: Final = 0x636D655F66656564  # "cme_feed"
# Events positioned per sequencing step at most; a larger backlog takes several steps.
SEQUENCE_BATCH: Final = 10_000
PRODUCT_STATE: Final = (
    "sku",
    "name",
    "description",
    "price_cents",
    "quantity",
    "created_at",
    "updated_at",
)

_changes = product_changes.c


def with_change(write: Insert | Update | Delete | Select[Any], kind: ChangeType) -> Select[Any]:
    """The write (which returns the product's columns) plus the insert of its change event.

    The event goes in after the product row is written, so of two writes to one product the
    later one (which waited for the row lock) always gets the larger id. A delete's event
    occurs at the bound `occurred_at` and carries the deleted version plus one. A write that
    is itself a SELECT over data-modifying CTEs (a write with its ledger entry) keeps them:
    SQLAlchemy renders every CTE at the top of the one statement.
    """
    written = write.cte("written")
    return select(*written.c).add_cte(change_from(written, kind).cte("change"))


def change_from(written: CTE, kind: ChangeType) -> Insert:
    """The INSERT of the change event for each product row a data-modifying CTE returned."""
    deleted = kind is ChangeType.DELETED
    values: dict[str, ColumnElement[Any]] = {
        "type": literal_column(f"'{kind.value}'"),
        "product_id": written.c.id,
        "version": written.c.version + literal_column("1") if deleted else written.c.version,
        "occurred_at": (
            bindparam("occurred_at", type_=_changes.occurred_at.type)
            if deleted
            else written.c.updated_at
        ),
    }
    if not deleted:
        values.update({name: written.c[name] for name in PRODUCT_STATE})
    return insert(product_changes).from_select(list(values), select(*values.values()))


_SERVER_SET: Final = ("id", "position")
INSERT_CHANGE: Final = insert(product_changes).values(
    {c.name: bindparam(c.name, type_=c.type) for c in _changes if c.name not in _SERVER_SET}
)


def change_values(
    kind: ChangeType, product_id: Any, version: int, at: datetime, product: Product | None
) -> dict[str, Any]:
    """INSERT_CHANGE's parameters, for a store that inserts the event itself."""
    values: dict[str, Any] = dict.fromkeys(PRODUCT_STATE)
    if product is not None:
        values.update(
            sku=product.sku,
            name=product.name,
            description=product.description,
            price_cents=cents(product.price),
            quantity=product.quantity,
            created_at=product.created_at,
            updated_at=product.updated_at,
        )
    return {
        **values,
        "type": kind.value,
        "product_id": product_id,
        "version": version,
        "occurred_at": at,
    }


# What every commit of events changes: AUTOINCREMENT gives each a larger id than any before.
NEWEST_ID: Final = select(func.max(_changes.id))

# Is there an event a sequencing step would position? (Answered from the partial index.)
ANY_UNPOSITIONED: Final = select(exists().where(_changes.position.is_(None)))

_pending = (
    select(_changes.id)
    .where(_changes.position.is_(None))
    .order_by(_changes.id)
    .limit(bindparam("batch"))
    .subquery()
)
_base = select(
    func.greatest(
        func.coalesce(func.max(_changes.position), literal_column("0")),
        select(change_feed_horizon.c.pruned_through).scalar_subquery(),
    )
).scalar_subquery()
_numbered = select(
    _pending.c.id,
    (_base + func.row_number().over(order_by=_pending.c.id)).label("position"),
).subquery()
# PostgreSQL: every committed unpositioned event, in id order, after the highest position.
# Run under SEQUENCER_LOCK in a transaction of its own, after taking the lock
# (postgres/changes.py).
SEQUENCE_COMMITTED: Final = (
    update(product_changes)
    .where(_changes.id == _numbered.c.id)
    .values(position=_numbered.c.position)
)
_horizon: Final = select(change_feed_horizon.c.pruned_through).scalar_subquery()
# Never below the horizon: rows a prune has not finished deleting are gone to readers already.
READ: Final = (
    select(_changes.position, _changes.type, _changes.product_id, _changes.version)
    .add_columns(_changes.occurred_at, *(_changes[name] for name in PRODUCT_STATE))
    .where(_changes.position > bindparam("after"), _changes.position > _horizon)
    .order_by(_changes.position)
    .limit(bindparam("limit"))
)
# Read after the events: a prune that ran meanwhile then shows, and the cursor fails safe.
BOUNDS: Final = select(
    change_feed_horizon.c.pruned_through,
    select(func.max(_changes.position)).scalar_subquery(),
)

# Retention: raise the horizon to the newest position old enough to go (so what stays is
# every event after it), then delete at and below the horizon in batches, each committing on
# its own, so no statement or lock lasts long however many events go.
PRUNE_THROUGH: Final = select(func.max(_changes.position)).where(
    _changes.position.is_not(None),
    _changes.occurred_at < bindparam("before", type_=_changes.occurred_at.type),
)
RAISE_HORIZON: Final = (
    update(change_feed_horizon)
    .where(change_feed_horizon.c.pruned_through < bindparam("through"))
    .values(pruned_through=bindparam("through"))
)
PRUNE_BATCH: Final = 10_000
PRUNE: Final = product_changes.delete().where(
    _changes.id.in_(
        select(_changes.id)
        .where(_changes.position <= _horizon)
        .order_by(_changes.position)
        .limit(bindparam("batch"))
    )
)


def change_of(row: Sequence[Any]) -> Change:
    """The Change a READ row holds."""
    position, kind, product_id, version, occurred_at, sku, name, description = row[:8]
    price_cents, quantity, created_at, updated_at = row[8:12]
    product = None
    if sku is not None and price_cents is not None:
        price = price_of(price_cents)
        product = Product(
            product_id, sku, name, description, price, quantity, created_at, updated_at, version
        )
    return Change(position, ChangeType(kind), product_id, version, occurred_at, product)
