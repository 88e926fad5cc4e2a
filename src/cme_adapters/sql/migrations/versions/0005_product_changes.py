"""The change feed's outbox table and its retention horizon.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cme_adapters.sql.column_types import ChangeId, NameText, UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product_changes",
        sa.Column("id", ChangeId, nullable=False, autoincrement=True),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=True),
        sa.Column("name", NameText, nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("price_cents", sa.BigInteger(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_product_changes"),
        sa.UniqueConstraint("position", name="uq_product_changes_position"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_product_changes_unpositioned",
        "product_changes",
        ["id"],
        postgresql_where=sa.text("position IS NULL"),
        sqlite_where=sa.text("position IS NULL"),
    )
    op.create_index("ix_product_changes_occurred_at", "product_changes", ["occurred_at"])
    horizon = op.create_table(
        "change_feed_horizon",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_change_feed_horizon"),
        sa.CheckConstraint("id = 1", name="ck_change_feed_horizon_single_row"),
    )
    op.bulk_insert(horizon, [{"id": 1, "pruned_through": 0}])


def downgrade() -> None:
    op.drop_table("change_feed_horizon")
    op.drop_table("product_changes")
