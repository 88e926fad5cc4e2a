"""SQLite: each change event gets its feed position as it is inserted, not on a later read.

SQLite has one writer at a time, from its first write to its commit, so an event's id is
already its position in commit order. Given in the writer's transaction, a feed read needs
no write (which waited for the writer's lock, and failed with "database is locked" under
write load). PostgreSQL keeps its sequencer (postgres/changes.py): its writers commit in
another order than they insert.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CREATE_TRIGGER = (
    "CREATE TRIGGER product_changes_positioned AFTER INSERT ON product_changes"
    " WHEN NEW.position IS NULL"
    " BEGIN UPDATE product_changes SET position = NEW.id WHERE id = NEW.id; END"
)


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    op.execute(_CREATE_TRIGGER)
    # Events committed before this revision, which a read would have positioned so.
    op.execute("UPDATE product_changes SET position = id WHERE position IS NULL")


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute("DROP TRIGGER product_changes_positioned")
