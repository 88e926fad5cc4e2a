"""The page for `q` on PostgreSQL: a bounded walk of the sort order, then the trigram index.

Left to itself, the planner picks per pattern between walking the page's sort order until the
page is full and the trigram index (every name holding the pattern's trigrams, then a sort),
and it picks on an estimate from a sample of names. A rare fragment that the sample happens
to hold looks common, and the walk then reads the whole catalogue (0.1-0.3 s at a million
products in created_at order, over a second in name order). This statement takes both paths,
each bounded:

1. `hits`: the first WALK rows of the sort order past the keyset, filtered; a common
   fragment fills the page here, as the walk would.
2. only if that did not fill the page, and the walk did not reach the end of the catalogue
   (`edge`, its last row, exists): the matching rows past the walk, found through the trigram
   index and sorted. They are ordered by an expression no B-tree holds, so the planner cannot
   turn this part back into an unbounded walk.

The page is the first `limit` rows of both in the page's order: exactly the plain statement's
page (`statements.page_of`), since every row of the walk comes before every row past it. The
conditions of step 2 are one-time filters above its LIMIT, evaluated left to right and only
when reached, so a page found by the walk costs no index scan and no `edge`.
"""

import functools
import re
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Interval,
    Select,
    String,
    bindparam,
    collate,
    exists,
    func,
    literal_column,
    select,
    tuple_,
)

from cme_adapters.sql.holds import may_hold
from cme_adapters.sql.schema import PRODUCT_COLUMNS, products
from cme_adapters.sql.statements import SORT_COLUMNS, ordering, page_filters, past_keyset
from cme_domain.listing import SortField, SortOrder

# Rows of the sort order walked before the index is asked. At a million products, 10,000
# took the slowest of 1,000 queries from 106-109 ms to 16-17 ms in created_at order and from
# 1.2-1.4 s to 0.18-0.19 s in name order on one connection (bench/RESULTS.md); 5,000 and
# 2,000 sent too many patterns of about 1 name in 300 to the index, whose trigrams they share
# with many more names.
WALK: Final = 10_000

# The sort column as an expression no index holds, ordering exactly as the column does
# (names under the C collation, as the column's own).
_UNINDEXED: Final[dict[SortField, ColumnElement[Any]]] = {
    SortField.CREATED_AT: products.c.created_at + literal_column("interval '0'", Interval),
    SortField.NAME: collate(products.c.name.concat(literal_column("''", String)).self_group(), "C"),
    SortField.PRICE: products.c.price_cents + literal_column("0", BigInteger),
}


# pg_trgm takes a LIKE pattern's trigrams from its runs of letters and digits.
_TRIGRAM: Final = re.compile(r"[^\W_]{3}")


def has_trigram(text: str) -> bool:
    """Whether the trigram index can narrow a search for text.

    Without one, the index part of this statement has nothing to look up, and once the server
    has switched the prepared statement to its generic plan (psycopg prepares after five runs)
    it reads the whole index: 0.65-1.2 s at a million products for `zz`, against 0.27-0.29 s
    for the plain filter. Such a `q` keeps the plain filter (docs/design/search.md, limits).
    """
    return _TRIGRAM.search(text) is not None


@functools.cache
def search_page_of(
    walk: int,
    sort: SortField,
    order: SortOrder,
    *,
    after: bool,
    min_price: bool = False,
    max_price: bool = False,
) -> Select[Any]:
    """The page of rows whose name holds name_pattern, with the parameters `page_of` binds.

    A price bound on the price sort is a range of the walked index, so it bounds the walk too;
    every other filter is applied to the rows walked.
    """
    descending = order is SortOrder.DESC
    column = SORT_COLUMNS[sort]
    limit = bindparam("limit", type_=Integer)
    prices = {"min_price": min_price, "max_price": max_price}

    bounds: list[ColumnElement[bool]] = [past_keyset(products, sort, order)] if after else []
    if sort is SortField.PRICE:
        bounds += page_filters(products, sku=False, name=False, **prices)
    walked = (
        select(products)
        .where(*bounds)
        .order_by(*ordering(products, sort, order))
        .limit(literal_column(str(walk)))
        .subquery("walked")
    )
    # Both parts carry held_until, for the page's rows alone to say whether a hold may be on
    # them (holds.may_hold).
    hits = (
        select(*(walked.c[c.name] for c in PRODUCT_COLUMNS), walked.c.held_until)
        .where(*page_filters(walked, sku=False, name=True, **prices))
        .order_by(*ordering(walked, sort, order))
        .limit(limit)
        .cte("hits")
        .prefix_with("MATERIALIZED")
    )
    edge = (
        select(column, products.c.id)
        .where(*bounds)
        .order_by(*ordering(products, sort, order))
        .offset(literal_column(str(walk - 1)))
        .limit(literal_column("1"))
        .cte("edge")
        .prefix_with("MATERIALIZED")
    )
    mine = tuple_(column, products.c.id)
    theirs = select(edge.c[column.name], edge.c.id).scalar_subquery()
    hidden = _UNINDEXED[sort]
    past = (
        select(*PRODUCT_COLUMNS, products.c.held_until)
        .where(
            mine < theirs if descending else mine > theirs,
            *page_filters(products, sku=False, name=True, **prices),
        )
        .order_by(*(hidden.desc(), products.c.id.desc()) if descending else (hidden, products.c.id))
        .limit(limit)
        .subquery("past")
    )
    # Outside `past`, whose LIMIT keeps them from being pushed in: here they gate the whole
    # subquery, a parallel plan's workers included, which would evaluate them all up front.
    rest = select(past).where(
        select(func.count()).select_from(hits).scalar_subquery() < limit,
        exists(select(edge.c.id)),
    )
    both = select(hits).union_all(rest).subquery("found")
    page = select(*(both.c[c.name] for c in PRODUCT_COLUMNS), may_hold(both))
    return page.order_by(*ordering(both, sort, order)).limit(limit)
