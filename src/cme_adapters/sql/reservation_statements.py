"""The reservations' statements, built once with SQLAlchemy Core for both drivers.

SQLite runs the plain ones, several to a transaction. PostgreSQL runs ADD, SAVE_HELD,
SAVE_ENDED and EXPIRED: one statement each, joined by data-modifying CTEs, so that a write
costs one round trip and the sweeper's stays whole outside a transaction.

Every hold placed (ADD) or moved (SAVE_HELD) also raises its products' held_until by an
UPDATE of their rows (holds.py says why the rows themselves must change); one that ends
(SAVE_ENDED) brings it down to the products' other holds.

The reservation's id binds as `reservation` wherever a table is updated: SQLAlchemy would
read a parameter named after one of the updated table's columns as a value to SET.
"""

from typing import Any, Final

from sqlalchemy import (
    ARRAY,
    Integer,
    Select,
    Update,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    null,
    select,
    update,
)

from cme_adapters.sql.column_types import UtcDateTime
from cme_adapters.sql.holds import raised_held_until
from cme_adapters.sql.schema import products, reservation_lines, reservations
from cme_domain.reservation import ReservationStatus

_r = reservations.c
_l = reservation_lines.c
_HELD: Final = literal_column(f"'{ReservationStatus.HELD.value}'", _r.state.type)
_EXPIRED: Final = literal_column(f"'{ReservationStatus.EXPIRED.value}'", _r.state.type)
_RESERVATION: Final = bindparam("reservation", type_=_r.id.type)
_EXPIRES_AT: Final = bindparam("expires_at", type_=UtcDateTime)
_NOW: Final = bindparam("now", type_=UtcDateTime)

INSERT: Final = insert(reservations).values(
    {c.name: bindparam(c.name, type_=c.type) for c in reservations.c}
)
INSERT_LINE: Final = insert(reservation_lines).values(
    {c.name: bindparam(c.name, type_=c.type) for c in reservation_lines.c}
)
# The products of the reservation's lines, once they are written.
HOLD_PRODUCTS: Final = (
    update(products)
    .where(products.c.id.in_(select(_l.product_id).where(_l.reservation_id == _RESERVATION)))
    .values(held_until=raised_held_until(_EXPIRES_AT))
)

# One row per line, in request order; a reservation always has a line.
GET: Final = (
    select(*reservations.c, _l.product_id, _l.quantity)
    .join_from(reservations, reservation_lines)
    .where(_r.id == _RESERVATION)
    .order_by(_l.ordinal)
)
# PostgreSQL: the reservation's row only; its lines never change but for held_until.
GET_FOR_UPDATE: Final = GET.with_for_update(of=reservations)

UPDATE: Final = (
    update(reservations)
    .where(_r.id == _RESERVATION)
    .values(
        state=bindparam("state", type_=_r.state.type),
        updated_at=bindparam("updated_at", type_=UtcDateTime),
        expires_at=_EXPIRES_AT,
    )
)
# The reservation's held_until: its expires_at while held, null from then on.
UPDATE_LINES: Final = (
    update(reservation_lines)
    .where(_l.reservation_id == _RESERVATION)
    .values(held_until=bindparam("held_until", type_=UtcDateTime))
)


_others: Final = reservation_lines.alias("other").c
# When a reservation ends, its products' bound comes down to the latest expiry of their other
# holds (null when there are none). Left up, every stock-taking write of the product would go
# the locked way until the ended hold's expiry (bench/reservations.py: adjustments of reserved
# products 1818/s before any hold, about 700/s after). The other lines are read, not this
# reservation's: in one statement (PostgreSQL) UPDATE_LINES's nulls are not visible yet. The
# caller locked the products, so no hold can be added meanwhile; one ending meanwhile only
# leaves the bound higher than it needs to be.
LOWER_PRODUCTS: Final = (
    update(products)
    .where(products.c.id.in_(select(_l.product_id).where(_l.reservation_id == _RESERVATION)))
    .values(
        held_until=select(func.max(_others.held_until))
        .where(_others.product_id == products.c.id, _others.reservation_id != _RESERVATION)
        .scalar_subquery()
    )
)


def _add() -> Update:
    """INSERT, its lines (bound as arrays, numbered in their order by WITH ORDINALITY) and
    HOLD_PRODUCTS in one statement."""
    product_ids = bindparam("product_ids", type_=ARRAY(_l.product_id.type))
    lines = (
        func.unnest(product_ids, bindparam("quantities", type_=ARRAY(Integer)))
        .table_valued("product_id", "quantity", with_ordinality="ordinal")
        .render_derived(name="line")
    )
    inserted = insert(reservation_lines).from_select(
        ["reservation_id", "product_id", "ordinal", "quantity", "held_until"],
        select(
            bindparam("id", type_=_r.id.type),
            lines.c.product_id,
            lines.c.ordinal,
            lines.c.quantity,
            _EXPIRES_AT,
        ),
    )
    # The lines' own rows are not there yet for this statement: the products go by the array.
    held = (
        update(products)
        .where(products.c.id == any_(product_ids))
        .values(held_until=raised_held_until(_EXPIRES_AT))
    )
    return held.add_cte(INSERT.cte("reservation"), inserted.cte("lines"))


ADD: Final = _add()
SAVE_HELD: Final = HOLD_PRODUCTS.add_cte(UPDATE.cte("saved"), UPDATE_LINES.cte("lines"))
SAVE_ENDED: Final = LOWER_PRODUCTS.add_cte(UPDATE.cte("saved"), UPDATE_LINES.cte("lines"))

_RAN_OUT: Final = (_r.state == _HELD, _r.expires_at <= _NOW)
# SQLite, in one transaction: the lines first (by the reservations they are about to mark).
EXPIRE_LINES: Final = (
    update(reservation_lines)
    .where(_l.reservation_id.in_(select(_r.id).where(*_RAN_OUT)))
    .values(held_until=null())
)
EXPIRE: Final = update(reservations).where(*_RAN_OUT).values(state=_EXPIRED, updated_at=_NOW)


def _expired() -> Select[Any]:
    marked = EXPIRE.returning(_r.id).cte("expired")
    cleared = (
        update(reservation_lines)
        .where(_l.reservation_id.in_(select(marked.c.id)))
        .values(held_until=null())
        .cte("cleared")
    )
    return select(func.count()).select_from(marked).add_cte(cleared)


# PostgreSQL: both in one statement, answering how many were marked.
EXPIRED: Final = _expired()
PRUNE: Final = reservations.delete().where(
    _r.state != _HELD, _r.updated_at < bindparam("before", type_=UtcDateTime)
)
HELD_UNITS: Final = select(func.coalesce(func.sum(_l.quantity), literal_column("0"))).where(
    _l.held_until > _NOW
)
