"""SQLAlchemy Core statements compiled once into the text psycopg sends."""

from typing import Final

from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.sql.expression import ClauseElement

_DIALECT: Final = psycopg_dialect()  # type: ignore[no-untyped-call]


def compiled(statement: ClauseElement) -> str:
    """The statement's SQL with %(name)s placeholders for its named bind parameters.

    A statement that would need a value SQLAlchemy invented (an anonymous bind for a literal)
    is refused here, at start-up, rather than failing on its first request.
    """
    compiled_statement = statement.compile(dialect=_DIALECT)
    invented = [name for name, value in compiled_statement.params.items() if value is not None]
    if invented:
        raise ValueError(f"statement binds literals {invented}: use literal_column instead")
    return str(compiled_statement)
