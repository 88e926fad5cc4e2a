"""`q` matches names case-insensitively in all of Unicode: each name is stored folded beside it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

`name_folded` is `cme_domain.listing.search_fold(name)`, written by every write of a name. The
databases cannot compute it: PostgreSQL's lower() follows the database's locale and does no full
case folding (ß stays ß), SQLite's folds A-Z only. On PostgreSQL its trigram index replaces the
one on lower(name) (0003), built in this transaction as 0003 explains.

The existing rows are filled here. An ASCII name folds to its ASCII lower case, which
PostgreSQL computes in one rewrite of the table (lower() under the C collation); the others are
folded in Python, 5,000 to a statement. Adding a column locks products against reads and writes
until the migration commits: at a million products on 2 shared cores, 10.5 s when every name
was ASCII and 82.5 s when none was (`bench/fold_migration.py --names ascii|unicode`).
"""

import uuid
from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from alembic import op

from cme_domain.listing import search_fold

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH: Final = 5_000


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _fill_sqlite(bind)
        return
    op.execute("SET LOCAL statement_timeout = 0")
    # First, so that rewriting every row does not also write its entries into this index.
    op.execute("DROP INDEX IF EXISTS ix_products_name_trgm")
    op.add_column("products", sa.Column("name_folded", sa.Text(), nullable=True))
    # A rewrite of the table, its indexes rebuilt once at the end: 2-3 times faster than an
    # UPDATE of every row, which writes each row's entries into every index as it goes.
    op.execute(
        "ALTER TABLE products ALTER COLUMN name_folded TYPE text USING CASE"
        ' WHEN octet_length(name) = char_length(name) THEN lower(name COLLATE "C") END'
    )
    unfolded = sa.text(
        "SELECT id, name FROM products WHERE id > :after AND name_folded IS NULL"
        " ORDER BY id LIMIT :batch"
    )
    fill = sa.text(
        "UPDATE products p SET name_folded = f.folded"
        " FROM unnest(CAST(:ids AS uuid[]), CAST(:folded AS text[])) AS f(id, folded)"
        " WHERE p.id = f.id"
    )
    after = uuid.UUID(int=0)
    while rows := bind.execute(unfolded, {"after": after, "batch": _BATCH}).all():
        ids, names = zip(*rows, strict=True)
        bind.execute(fill, {"ids": list(ids), "folded": [search_fold(n) for n in names]})
        after = ids[-1]
    op.alter_column("products", "name_folded", nullable=False)
    op.execute(
        "CREATE INDEX ix_products_name_folded_trgm ON products USING gin (name_folded gin_trgm_ops)"
    )
    # As 0003 set it for lower(name): the planner's sample of names, from which it estimates
    # how many a pattern matches, large enough to tell 1 in 1,000 from 1 in 20,000.
    op.execute("ALTER TABLE products ALTER COLUMN name_folded SET STATISTICS 1000")
    op.execute(_FOLD_FOR_OLDER_WRITERS)
    op.execute(
        "CREATE TRIGGER products_name_folded_for_older_writers"
        " BEFORE INSERT OR UPDATE OF name ON products"
        " FOR EACH ROW EXECUTE FUNCTION products_name_folded_for_older_writers()"
    )


# While a rolling update runs, pods of the release before 0008 still write names without
# name_folded: their creates would fail its NOT NULL, their renames leave it stale. For them
# the database folds as well as SQL can (lower case and NFKC, without full case folding:
# "ß" stays "ß"). A write of this release that renames a product without changing its fold
# ("Lamp" to "LAMP") looks the same and gets the same folding, exact for ASCII names.
_FOLD_FOR_OLDER_WRITERS: Final = """
CREATE FUNCTION products_name_folded_for_older_writers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.name_folded IS NULL OR (
    TG_OP = 'UPDATE' AND NEW.name IS DISTINCT FROM OLD.name
    AND NEW.name_folded IS NOT DISTINCT FROM OLD.name_folded
  ) THEN
    NEW.name_folded := normalize(lower(NEW.name COLLATE "default"), NFKC);
  END IF;
  RETURN NEW;
END
$$
"""


def _fill_sqlite(bind: sa.Connection) -> None:
    # A NOT NULL column needs a default to be added without rebuilding the table, and the
    # rebuild would drop products under the ledger's ON DELETE CASCADE. Every write binds the
    # column (statements.INSERT binds each one), so the default is never what a row keeps.
    op.execute("ALTER TABLE products ADD COLUMN name_folded TEXT NOT NULL DEFAULT ''")
    sqlite = bind.connection.dbapi_connection
    sqlite.create_function("cme_search_fold", 1, search_fold, deterministic=True)  # type: ignore[union-attr]
    op.execute("UPDATE products SET name_folded = cme_search_fold(name)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL statement_timeout = 0")
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_products_name_trgm "
            "ON products USING gin (lower(name) gin_trgm_ops)"
        )
        op.execute("ALTER INDEX ix_products_name_trgm ALTER COLUMN 1 SET STATISTICS 1000")
        op.execute("DROP INDEX ix_products_name_folded_trgm")
        op.execute("DROP TRIGGER products_name_folded_for_older_writers ON products")
        op.execute("DROP FUNCTION products_name_folded_for_older_writers()")
    op.drop_column("products", "name_folded")
