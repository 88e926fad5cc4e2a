"""What a statement's span is named by, read once from its compiled text."""

import functools
import re
from typing import Final


@functools.cache
def span_name(sql: str) -> tuple[str, str]:
    """The operation and the table a statement's span is named by: ("SELECT", "products")."""
    operation = sql.split(None, 1)[0].upper()
    if operation == "WITH":  # a write that records its change: named by the write it wraps;
        write = _WRAPPED_WRITE.search(sql)  # otherwise the page for `q` (search.py), a read
        operation = write.group(1).upper() if write else "SELECT"
        table = _TABLE.search(sql)
        return operation, table.group(1) if table else ""
    return operation, _outer_table(sql)


def _outer_table(sql: str) -> str:
    """The statement's own table, not one a subquery reads (a product's holds, sql/holds.py),
    or failing that the first one named."""
    depth, first = 0, ""
    for token in _TABLE_OR_PARENTHESIS.finditer(sql):
        if token.group(0) in "()":
            depth += 1 if token.group(0) == "(" else -1
        elif depth == 0:
            return token.group(1)
        else:
            first = first or token.group(1)
    return first


_TABLE: Final = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", re.IGNORECASE)
_TABLE_OR_PARENTHESIS: Final = re.compile(r"[()]|" + _TABLE.pattern, re.IGNORECASE)
_WRAPPED_WRITE: Final = re.compile(r"\bAS\s+\(\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
