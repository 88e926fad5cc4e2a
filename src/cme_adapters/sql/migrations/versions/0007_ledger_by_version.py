"""A product's ledger is listed by the version each entry left, not by its clock.

Two writes that race commit in another order than they read the clock; each write to a
product raises its version, so version_after is the order the entries were applied in.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_stock_ledger_product_id_version_after_id",
        "stock_ledger",
        ["product_id", "version_after", "id"],
    )
    op.drop_index("ix_stock_ledger_product_id_created_at_id", "stock_ledger")


def downgrade() -> None:
    op.create_index(
        "ix_stock_ledger_product_id_created_at_id",
        "stock_ledger",
        ["product_id", "created_at", "id"],
    )
    op.drop_index("ix_stock_ledger_product_id_version_after_id", "stock_ledger")
