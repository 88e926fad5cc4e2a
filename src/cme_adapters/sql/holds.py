"""What a product row says of the reservations holding it, for the reads and the writes of both
databases: the units held now, and whether a write may take stock without counting them.

Both are decided first by the row's own `held_until` (schema.py), for two reasons. A product
never reserved then costs no look at the lines. And on PostgreSQL a write that waited for the
row lock of a reservation's transaction re-evaluates its WHERE on the row that transaction
wrote (READ COMMITTED's recheck), but a subquery over the lines would still answer from the
write's older snapshot, blind to the lines just committed: every hold therefore raises the
product row's held_until (hold_products), and the write's guard reads that.
"""

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    FromClause,
    Select,
    any_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
)

from cme_adapters.sql.column_types import UtcDateTime
from cme_adapters.sql.schema import products, reservation_lines

# True when the caller has locked the product and counted its holds itself.
HOLDS_LOCKED: Final = bindparam("holds_locked", type_=Boolean)
_lines = reservation_lines.c


def may_hold(source: FromClause) -> ColumnElement[bool]:
    """Whether a live hold may be on each product of source (products, or a selection of its
    rows with held_until) at the bound `now`: the reads' last column. Only for the rows where
    it is true are the lines looked at (HELD_BY_ID), by a second statement: a subquery over
    the lines in every read, though never executed, took 70 us of planning per page."""
    now = bindparam("now", type_=UtcDateTime)
    return func.coalesce(source.c.held_until > now, literal_column("false")).label("may_hold")


def held_by_id(ids: ColumnElement[bool]) -> Select[Any]:
    """The units live holds put on the products `ids` selects, at the bound `now`."""
    now = bindparam("now", type_=UtcDateTime)
    return (
        select(_lines.product_id, func.sum(_lines.quantity))
        .where(ids, _lines.held_until > now)
        .group_by(_lines.product_id)
    )


def holds_allow(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """The guard of a write that could take held stock, unless HOLDS_LOCKED: no hold on the
    product can be live at `now`. A product it stops is not necessarily held (a hold may have
    ended since); the caller then locks it and counts (ports.ProductRepository)."""
    return or_(HOLDS_LOCKED, products.c.held_until.is_(None), products.c.held_until <= now)


def raised_held_until(until: ColumnElement[datetime]) -> ColumnElement[Any]:
    """products.held_until once a hold until `until` is placed: never lowered. (greatest() on
    PostgreSQL, max() on SQLite, null counting as lower: one CASE serves both.)"""
    return case((products.c.held_until > until, products.c.held_until), else_=until)


# SQLite binds one parameter per id, PostgreSQL one array, as statements.GET_MANY/GET_ANY.
HELD_BY_ID: Final = held_by_id(_lines.product_id.in_(bindparam("ids", expanding=True)))
HELD_BY_ID_ANY: Final = held_by_id(
    _lines.product_id == any_(bindparam("ids", type_=ARRAY(_lines.product_id.type)))
)
