"""Index product names by trigram on PostgreSQL, so that `q` stops scanning every row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

The index is on lower(name), the very expression the `q` filter matches its folded pattern
against (cme_adapters.sql.statements.page_of), so the planner can use it as it stands.

It is built inside the migration's transaction, not CONCURRENTLY: `cme migrate` runs every
pending revision in one transaction, all or nothing, and CONCURRENTLY cannot run in one. The
build holds a SHARE lock on products (reads go on, writes wait) for as long as it takes: 4-5 s
for a million products on 2 shared cores. An operator who cannot pause writes that long builds
the same index by hand first (README, "Search"); IF NOT EXISTS then makes this step a no-op.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no trigram index: it scans, which an embedded catalogue can afford.
    # pg_trgm is a trusted extension: the database owner may create it without superuser.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # The service's statement_timeout (5 s) applies to `cme migrate`'s connection too, and the
    # build reads every name: at a million products it took 4-5 s on a quiet machine and more
    # on a busy one. For this transaction only, the build may take what it needs.
    op.execute("SET LOCAL statement_timeout = 0")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_products_name_trgm "
        "ON products USING gin (lower(name) gin_trgm_ops)"
    )
    # The planner picks between this index (then a sort) and walking the sort order until a
    # page is full by how many names it expects to match, and it estimates that by trying the
    # pattern on a sample of names kept by ANALYZE. The default 100 cannot tell 1 name in 1,000
    # from 1 in 20,000, the range where the choice matters; 1,000 can (bench/RESULTS.md).
    op.execute("ALTER INDEX ix_products_name_trgm ALTER COLUMN 1 SET STATISTICS 1000")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # The extension stays: an operator's own objects in this database may use it by now.
    op.execute("DROP INDEX IF EXISTS ix_products_name_trgm")
