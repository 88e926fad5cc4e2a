"""The tables every store shares, with their indexes and named constraints."""

from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
)

from cme_adapters.sql.column_types import ChangeId, NameText, UtcDateTime

# Named constraints, so migrations and error translation can refer to them on every dialect.
metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

products = Table(
    "products",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", NameText, nullable=False),
    Column("description", Text, nullable=True),
    Column("price_cents", BigInteger, nullable=False),  # codecs.cents
    Column("quantity", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    # The name as `q` compares it (cme_domain.listing.search_fold), written with every name:
    # no database folds Unicode as Python does. Text: folding can lengthen a name 18-fold.
    Column("name_folded", Text, nullable=False),
    # At or after the expires_at of every hold ever put on the product: raised by each hold and
    # extension, never lowered. Null or past, no hold can be live, and a write may take stock
    # without counting holds (holds.holds_allow) nor read a line to count none (holds.may_hold).
    Column("held_until", UtcDateTime, nullable=True),
    CheckConstraint("price_cents >= 0 AND price_cents < 1000000000000", name="price_range"),
    CheckConstraint("quantity >= 0", name="quantity_range"),
    CheckConstraint("version >= 1", name="version_positive"),
)

# Keyset pagination walks these: (sort column, id) for each sort the API offers.
Index("ix_products_created_at_id", products.c.created_at, products.c.id)
Index("ix_products_name_id", products.c.name, products.c.id)
Index("ix_products_price_cents_id", products.c.price_cents, products.c.id)
# `q` on PostgreSQL: trigrams of the folded name, the column its filter matches (migration 0008).
Index(
    "ix_products_name_folded_trgm",
    products.c.name_folded,
    postgresql_using="gin",
    postgresql_ops={"name_folded": "gin_trgm_ops"},
    info={"dialect": "postgresql"},  # for the schema comparison (tests/integration)
).ddl_if(dialect="postgresql")
# What a Product is made of: every column but the search key derived from its name and the
# bound on its holds (its `held` is counted from the lines, holds.may_hold).
PRODUCT_COLUMNS: Final = tuple(
    c for c in products.c if c is not products.c.name_folded and c is not products.c.held_until
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("product_id", Uuid, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    # What else a replay needs (a ledger entry's id, a batch's items); empty for a create.
    Column("outcome", Text, nullable=False, server_default=""),
)

# Every change of a product's quantity, so that its quantity is the sum of its deltas.
stock_ledger = Table(
    "stock_ledger",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("product_id", Uuid, ForeignKey(products.c.id, ondelete="CASCADE"), nullable=False),
    Column("delta", Integer, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("reference", String(200), nullable=True),
    Column("quantity_after", Integer, nullable=False),
    Column("version_after", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("delta <> 0", name="delta_nonzero"),
)

# A product's ledger, the latest applied first, in keyset pages (stock_statements.ledger_page).
Index(
    "ix_stock_ledger_product_id_version_after_id",
    stock_ledger.c.product_id,
    stock_ledger.c.version_after,
    stock_ledger.c.id,
)

# Secrets the service makes for itself, made once per database so that every replica agrees.
service_secrets = Table(
    "service_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)

# The transactional outbox: one row per committed product change, written by the same statement
# (PostgreSQL) or transaction (SQLite) as the change. `id` is insert order; `position` is the
# feed order, so a consumer reading `position > cursor` never skips an event that committed
# late: on PostgreSQL given after commit by a sequencer (postgres/changes.py); on SQLite, where
# insert order is commit order, set to the id as the event is inserted (a trigger, migration
# 0006). The product columns hold the state after the change (null after a delete): the
# product may have changed again since.
product_changes = Table(
    "product_changes",
    metadata,
    Column("id", ChangeId, primary_key=True, autoincrement=True),
    Column("position", BigInteger, nullable=True, unique=True),
    Column("type", String(32), nullable=False),
    Column("product_id", Uuid, nullable=False),
    Column("version", Integer, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("sku", String(64), nullable=True),
    Column("name", NameText, nullable=True),
    Column("description", Text, nullable=True),
    Column("price_cents", BigInteger, nullable=True),
    Column("quantity", Integer, nullable=True),
    Column("created_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=True),
    # SQLite then never reuses an id, even the highest after a prune deleted it.
    sqlite_autoincrement=True,
)
# What the sequencer looks for: few rows (the events committed since its last step).
Index(
    "ix_product_changes_unpositioned",
    product_changes.c.id,
    postgresql_where=product_changes.c.position.is_(None),
    sqlite_where=product_changes.c.position.is_(None),
)
Index("ix_product_changes_occurred_at", product_changes.c.occurred_at)

# One row: the highest position retention has deleted, so an older cursor can be told (410).
change_feed_horizon = Table(
    "change_feed_horizon",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("pruned_through", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

# A cart's stock on hold (cme_domain.reservation). The state is what was last written: a held
# reservation stops holding at expires_at whether or not the sweeper has marked it expired.
reservations = Table(
    "reservations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("reference", String(200), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    CheckConstraint("state IN ('held', 'confirmed', 'released', 'expired')", name="state_known"),
)
# The sweeper's two walks: held ones that ran out (expire), ended ones grown old (prune).
Index("ix_reservations_state_expires_at", reservations.c.state, reservations.c.expires_at)
Index("ix_reservations_updated_at", reservations.c.updated_at)

# product_id is no foreign key: a product that live holds name cannot be deleted, and once it
# is, its ended reservations still say what they held (a cascade would drop their lines).
reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column(
        "reservation_id",
        Uuid,
        ForeignKey(reservations.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("product_id", Uuid, primary_key=True),
    Column("ordinal", SmallInteger, nullable=False),  # the line's place in the request
    Column("quantity", Integer, nullable=False),
    # The reservation's expires_at while it is held, null once it is not: a line holds while
    # this is after now, so the product's holds are one range of the index below.
    Column("held_until", UtcDateTime, nullable=True),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)
Index(
    "ix_reservation_lines_product_id_held_until",
    reservation_lines.c.product_id,
    reservation_lines.c.held_until,
    postgresql_where=reservation_lines.c.held_until.is_not(None),
    sqlite_where=reservation_lines.c.held_until.is_not(None),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("url", String(2000), nullable=False),
    # The wanted event types, comma-joined; null: every type, those to come included.
    Column("events", String(200), nullable=True),
    Column("description", String(500), nullable=True),
    Column("status", String(16), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The feed position the endpoint is done with: it moves only once an event is acknowledged.
    Column("position", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failing_since", UtcDateTime, nullable=True),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    # Which worker delivers to it, until when: one at a time over every pod.
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('active', 'disabled')", name="status_known"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # Rising with every attempt, so newest first is one walk of the index below.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("webhook_id", Uuid, ForeignKey(webhooks.c.id, ondelete="CASCADE"), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("message_id", String(100), nullable=False),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("status_code", SmallInteger, nullable=True),
    Column("error", String(300), nullable=True),
    Column("duration_us", Integer, nullable=False),
)
Index(
    "ix_webhook_deliveries_webhook_id_id", webhook_deliveries.c.webhook_id, webhook_deliveries.c.id
)
Index("ix_webhook_deliveries_attempted_at", webhook_deliveries.c.attempted_at)
