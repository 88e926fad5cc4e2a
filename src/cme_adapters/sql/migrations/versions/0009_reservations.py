"""Reservations: stock held for a cart until it is confirmed, released or runs out.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

`products.held_until` bounds the holds ever put on each product from above (schema.py); a
nullable column without a default is added without rewriting the table on either database,
and null is right for every existing product: nothing holds it yet. The release before this
one neither writes the column nor reads the new tables, so its writes keep working during a
rolling update; they do not respect holds, which only this release places.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cme_adapters.sql.column_types import UtcDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("products", sa.Column("held_until", UtcDateTime(), nullable=True))
    op.create_table(
        "reservations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "state IN ('held', 'confirmed', 'released', 'expired')",
            name="ck_reservations_state_known",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reservations"),
    )
    op.create_index("ix_reservations_state_expires_at", "reservations", ["state", "expires_at"])
    op.create_index("ix_reservations_updated_at", "reservations", ["updated_at"])
    op.create_table(
        "reservation_lines",
        sa.Column("reservation_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("ordinal", sa.SmallInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("held_until", UtcDateTime(), nullable=True),
        sa.CheckConstraint("quantity > 0", name="ck_reservation_lines_quantity_positive"),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            ["reservations.id"],
            name="fk_reservation_lines_reservation_id_reservations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("reservation_id", "product_id", name="pk_reservation_lines"),
    )
    live = sa.text("held_until IS NOT NULL")
    op.create_index(
        "ix_reservation_lines_product_id_held_until",
        "reservation_lines",
        ["product_id", "held_until"],
        postgresql_where=live,
        sqlite_where=live,
    )


def downgrade() -> None:
    op.drop_table("reservation_lines")
    op.drop_table("reservations")
    # SQLite drops a column in place (3.35+) as long as no index or constraint names it.
    op.drop_column("products", "held_until")
