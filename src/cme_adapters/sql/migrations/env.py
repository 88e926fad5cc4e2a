"""Alembic environment: runs on the connection that `cme_adapters.sql.migrate` hands over."""

from alembic import context

from cme_adapters.sql.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
