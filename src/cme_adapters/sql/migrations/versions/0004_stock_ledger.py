"""The stock ledger, and what an idempotent replay of a non-create write needs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cme_adapters.sql.column_types import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stock_ledger",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("quantity_after", sa.Integer(), nullable=False),
        sa.Column("version_after", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("delta <> 0", name="ck_stock_ledger_delta_nonzero"),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name="fk_stock_ledger_product_id_products",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_stock_ledger"),
    )
    op.create_index(
        "ix_stock_ledger_product_id_created_at_id",
        "stock_ledger",
        ["product_id", "created_at", "id"],
    )
    # Products that exist already get their stock as an "initial" entry, so that the
    # quantity equals the sum of the ledger from the first day.
    op.execute(
        "INSERT INTO stock_ledger (id, product_id, delta, reason, reference, quantity_after,"
        " version_after, created_at) SELECT id, id, quantity, 'initial', NULL, quantity,"
        " version, updated_at FROM products WHERE quantity <> 0"
    )
    op.add_column(
        "idempotency_keys",
        sa.Column("outcome", sa.Text(), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("idempotency_keys", "outcome")
    op.drop_index("ix_stock_ledger_product_id_created_at_id", table_name="stock_ledger")
    op.drop_table("stock_ledger")
