"""`cme migrate`, `cme prune` and `cme prune-changes`: the commands that work on the database."""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from cme_domain.errors import StorageUnavailable
from cme_entrypoints import logs
from cme_entrypoints.settings import Settings


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    migrate = commands.add_parser(
        "migrate",
        help="apply database migrations (safe to run again)",
        description="Bring the configured database's schema up to date. Safe to run twice.",
    )
    migrate.set_defaults(run=_migrate)

    prune = commands.add_parser(
        "prune",
        help="delete expired idempotency records",
        description="Delete every idempotency record older than IDEMPOTENCY_TTL_HOURS. A running "
        "service does this on its own once an hour; this is for a one-off clean-up.",
    )
    prune.set_defaults(run=_prune)

    prune_changes = commands.add_parser(
        "prune-changes",
        help="delete change-feed events older than CHANGES_RETENTION_DAYS",
        description="Delete the change-feed events older than CHANGES_RETENTION_DAYS (default 7). "
        "A feed cursor older than what is kept then gets 410 Gone. Run it daily (the Kubernetes "
        "CronJob cme-prune-changes does).",
    )
    prune_changes.set_defaults(run=_prune_changes)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: every uvicorn worker re-imports the cli and so this module, and Alembic is
    # a third of its start-up time, needed only by this command.
    from cme_adapters.sql import migrate as migrations

    logs.configure(settings.log_level, settings.log_format, settings.google_cloud_project)
    try:
        asyncio.run(migrations.upgrade(settings.database_url))
    except StorageUnavailable as error:
        print(f"cme: cannot reach the database: {error}", file=sys.stderr)
        hint = _missing_database_hint(settings, str(error))
        if hint:
            print(hint, file=sys.stderr)
        return 1
    print(f"cme: the schema of {settings.database_location} is up to date")
    return 0


def _missing_database_hint(settings: Settings, error: str) -> str | None:
    """How to create the SQLite file's folder, or a PostgreSQL role or database, that is missing."""
    from sqlalchemy.engine import make_url

    if settings.missing_sqlite_folder:
        return f"cme: the folder {settings.missing_sqlite_folder} does not exist: create it first"
    parts = make_url(settings.database_url)
    role, name = parts.username or "cme", parts.database or "cme"
    if f'role "{role}" does not exist' in error:
        return (
            f"cme: as a PostgreSQL superuser, create the role and its database first: "
            f'CREATE ROLE "{role}" LOGIN PASSWORD \'...\'; CREATE DATABASE "{name}" '
            f'OWNER "{role}"; (docs/configuration/postgresql.md)'
        )
    if f'database "{name}" does not exist' in error:
        return (
            f"cme: as a PostgreSQL superuser, create the database first: "
            f'CREATE DATABASE "{name}" OWNER "{role}"; (docs/configuration/postgresql.md)'
        )
    return None


def _prune(settings: Settings, args: argparse.Namespace) -> int:
    return _run_prune(settings, lambda c: c.prune_idempotency_keys(), "expired idempotency records")


def _prune_changes(settings: Settings, args: argparse.Namespace) -> int:
    return _run_prune(settings, lambda c: c.prune_changes(), "change events")


def _run_prune(
    settings: Settings, use_case: Callable[[Any], Callable[[], Awaitable[int]]], removed_what: str
) -> int:
    """Open the database, run one of the container's prune use cases, and say what went."""
    from cme_entrypoints.container import Container

    logs.configure(settings.log_level, settings.log_format)
    container = Container(settings=settings)

    async def prune() -> int:
        database = container.database()
        await database.open()
        try:
            removed = await use_case(container)()
        finally:
            await database.close()
        return removed

    try:
        removed = asyncio.run(prune())
    except StorageUnavailable as error:
        print(f"cme: cannot reach the database: {error}", file=sys.stderr)
        return 1
    print(f"cme: removed {removed} {removed_what}")
    return 0
