"""The stock ledger's statements, and the product writes that change stock, built once.

SQLite runs the plain ones, several to a transaction. PostgreSQL runs the `*_WITH_ENTRY`
forms: one statement each, the product write and its ledger entry joined by data-modifying
CTEs, so a write that changes stock still costs a single round trip.
"""

from typing import Any, Final

from sqlalchemy import (
    CTE,
    BigInteger,
    Select,
    String,
    and_,
    bindparam,
    cast,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)

from cme_adapters.sql import statements
from cme_adapters.sql.holds import holds_allow
from cme_adapters.sql.outbox import change_from, with_change
from cme_adapters.sql.schema import PRODUCT_COLUMNS, products, stock_ledger
from cme_domain.changes import ChangeType
from cme_domain.product import QUANTITY_MAX

INSERT_ENTRY: Final = stock_ledger.insert().values(
    {c.name: bindparam(f"entry_{c.name}", type_=c.type) for c in stock_ledger.c}
)
GET_ENTRY: Final = select(stock_ledger).where(stock_ledger.c.id == bindparam("entry_id"))
DELETE_ENTRIES: Final = stock_ledger.delete().where(
    stock_ledger.c.product_id == bindparam("product_id")
)

_ADJUSTED_QUANTITY: Final = cast(products.c.quantity, BigInteger) + bindparam(
    "delta", type_=BigInteger
)
_ADJUSTED_AT: Final = bindparam("updated_at", type_=products.c.updated_at.type)
# quantity += delta, only while the result stays a quantity a product can hold, and, for a
# delta that takes stock, while no hold can be live or the caller counted them (holds_locked).
ADJUST: Final = (
    update(products)
    .where(
        products.c.id == bindparam("product_id"),
        _ADJUSTED_QUANTITY.between(literal_column("0"), literal_column(str(QUANTITY_MAX))),
        or_(bindparam("delta", type_=BigInteger) > literal_column("0"), holds_allow(_ADJUSTED_AT)),
    )
    .values(
        quantity=products.c.quantity + bindparam("delta", type_=BigInteger),
        version=products.c.version + literal_column("1"),
        updated_at=_ADJUSTED_AT,
    )
    .returning(*PRODUCT_COLUMNS)
)
ADJUST_AT_VERSION: Final = ADJUST.where(products.c.version == bindparam("expected_version"))


def _entry_from(written: CTE, delta: Any, reason: Any, reference: Any) -> Any:
    """The INSERT of a ledger entry for the product a CTE wrote, describing it as it is now."""
    return stock_ledger.insert().from_select(
        [c.name for c in stock_ledger.c],
        select(
            bindparam("entry_id", type_=stock_ledger.c.id.type),
            written.c.id,
            delta,
            reason,
            reference,
            written.c.quantity,
            written.c.version,
            written.c.updated_at,
        ),
    )


def _adjust_with_entry(adjust: Any) -> Any:
    """An adjustment in one statement: the write, its ledger entry (returned) and its change
    event, the product's state after it."""
    adjusted = adjust.cte("adjusted")
    return (
        _entry_from(
            adjusted,
            bindparam("delta", type_=BigInteger),
            bindparam("reason", type_=String),
            cast(bindparam("reference"), String),
        )
        .add_cte(adjusted, change_from(adjusted, ChangeType.STOCK_ADJUSTED).cte("change"))
        .returning(*stock_ledger.c)
    )


ADJUST_WITH_ENTRY: Final = _adjust_with_entry(ADJUST)
ADJUST_AT_VERSION_WITH_ENTRY: Final = _adjust_with_entry(ADJUST_AT_VERSION)


def _replace_with_entry(at_version: bool) -> Select[Any]:
    """PUT in one statement: the row locked and its old quantity read, the write (guarded as
    statements.REPLACE is), and a "set" entry of new - old when the quantity changed."""
    old = (
        select(products.c.id, products.c.quantity)
        .where(products.c.id == bindparam("product_id"))
        .with_for_update()
        .cte("old")
    )
    condition = and_(products.c.id == old.c.id, statements.REPLACE_GUARD)
    if at_version:
        condition = and_(condition, products.c.version == bindparam("expected_version"))
    replaced = (
        update(products)
        .where(condition)
        .values(statements.NEW_VALUES)
        .returning(*PRODUCT_COLUMNS, old.c.quantity.label("old_quantity"))
        .cte("replaced")
    )
    entry = _entry_from(
        replaced,
        replaced.c.quantity - replaced.c.old_quantity,
        literal_column("'set'"),
        cast(literal_column("NULL"), String),
    )
    entry = entry.from_select(  # the same INSERT, for changed quantities only
        [c.name for c in stock_ledger.c],
        entry.select.where(replaced.c.quantity != replaced.c.old_quantity),
    ).cte("entry")
    return select(*(replaced.c[c.name] for c in PRODUCT_COLUMNS)).add_cte(entry)


# PUT/PATCH with its change event: still one statement (outbox.with_change).
REPLACE_WITH_ENTRY: Final = with_change(_replace_with_entry(at_version=False), ChangeType.UPDATED)
REPLACE_AT_VERSION_WITH_ENTRY: Final = with_change(
    _replace_with_entry(at_version=True), ChangeType.UPDATED
)


def _insert_with_entry() -> Select[Any]:
    """POST in one statement: the product, and its "initial" entry (the caller omits this
    form for a product that starts at 0)."""
    created = statements.INSERT.returning(*PRODUCT_COLUMNS).cte("created")
    entry = _entry_from(
        created,
        bindparam("entry_delta", type_=BigInteger),
        literal_column("'initial'"),
        cast(literal_column("NULL"), String),
    ).cte("entry")
    return select(*created.c).add_cte(entry)


# POST with its entry and its change event, returning the product as INSERT_RECORDED does.
INSERT_WITH_ENTRY: Final = with_change(_insert_with_entry(), ChangeType.CREATED)


def ledger_page(*, after: bool) -> Select[Any]:
    """A product's ledger, the latest applied first: (version_after, id) descending, from a
    keyset. Not created_at: two writes that race commit in another order than they read the
    clock, and each write to a product raises its version."""
    statement = select(stock_ledger).where(stock_ledger.c.product_id == bindparam("product_id"))
    if after:
        mine = tuple_(stock_ledger.c.version_after, stock_ledger.c.id)
        theirs = tuple_(
            bindparam("after_version", type_=stock_ledger.c.version_after.type),
            bindparam("after_id", type_=stock_ledger.c.id.type),
        )
        statement = statement.where(mine < theirs)
    ordering = (stock_ledger.c.version_after.desc(), stock_ledger.c.id.desc())
    return statement.order_by(*ordering).limit(bindparam("limit"))


LEDGER_PAGE: Final = ledger_page(after=False)
LEDGER_PAGE_AFTER: Final = ledger_page(after=True)

OLD_QUANTITY: Final = select(products.c.quantity).where(products.c.id == bindparam("product_id"))
EXISTING_BY_SKU: Final = select(*PRODUCT_COLUMNS).where(
    products.c.sku.in_(bindparam("skus", expanding=True))
)
# A write that changes nothing: on SQLite it takes the write lock at the start of a
# transaction that reads before it writes; otherwise a concurrent writer makes the later
# write fail at once (SQLITE_BUSY) instead of waiting its turn.
TAKE_WRITE_LOCK: Final = stock_ledger.delete().where(literal_column("0") == literal_column("1"))
