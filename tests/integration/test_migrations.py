"""Migrations are the only schema source: they match the metadata, and go down and up again."""

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.engine import make_url

from cme_adapters.sql import migrate
from cme_adapters.sql.config import async_url
from cme_adapters.sql.revisions import SCHEMA_HEAD
from cme_adapters.sql.schema import metadata

CME = str(Path(sys.executable).with_name("cme"))

ALL_TABLES = {
    "products",
    "idempotency_keys",
    "service_secrets",
    "stock_ledger",
    "product_changes",
    "change_feed_horizon",
    "reservations",
    "reservation_lines",
    "webhooks",
    "webhook_deliveries",
}


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    name = f"cme_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def sync_engine_url(url: str) -> str:
    target = async_url(url)
    driver = "postgresql+psycopg" if target.get_backend_name() == "postgresql" else "sqlite"
    return target.set(drivername=driver).render_as_string(hide_password=False)


def tables(url: str) -> set[str]:
    engine = create_engine(sync_engine_url(url))
    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names())
    engine.dispose()
    return names - {"alembic_version"}


def schema_drift(url: str) -> list[object]:
    engine = create_engine(sync_engine_url(url))

    def compare(connection: Connection) -> list[object]:
        def on_this_database(item: Any, *_: object) -> bool:
            return item.info.get("dialect", connection.dialect.name) == connection.dialect.name

        context = MigrationContext.configure(connection, opts={"include_object": on_this_database})
        return list(compare_metadata(context, metadata))

    with engine.connect() as connection:
        drift = compare(connection)
    engine.dispose()
    return drift


# SQLite never gets the PostgreSQL-only trigram index (ddl_if, and info for the comparison).
def test_migrations_build_exactly_the_schema_the_code_declares(fresh_url: str) -> None:
    asyncio.run(migrate.upgrade(fresh_url))
    assert tables(fresh_url) == ALL_TABLES
    assert schema_drift(fresh_url) == []


def test_migrations_go_down_to_nothing_and_up_again(fresh_url: str) -> None:
    asyncio.run(migrate.upgrade(fresh_url))
    asyncio.run(migrate.downgrade(fresh_url))
    assert tables(fresh_url) == set()
    asyncio.run(migrate.upgrade(fresh_url))
    assert tables(fresh_url) == ALL_TABLES


def test_cme_migrate_is_safe_to_run_twice(fresh_url: str, tmp_path: Path) -> None:
    for _ in range(2):
        result = subprocess.run(
            [CME, "migrate"],
            env={"DATABASE_URL": fresh_url, "PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        where = "the SQLite file" if fresh_url.startswith("sqlite") else "PostgreSQL at"
        assert f"cme: the schema of {where}" in result.stdout
        assert result.stdout.rstrip().endswith("is up to date")


def test_cme_migrate_against_an_unreachable_database_fails_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [CME, "migrate"],
        env={"DATABASE_URL": "postgresql://nobody:secret-pw@127.0.0.1:1/none", "PATH": "/usr/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("cme: cannot reach the database")
    assert "Traceback" not in result.stderr
    assert "secret-pw" not in result.stderr + result.stdout


def test_the_schema_head_the_code_names_is_the_newest_migration() -> None:
    scripts = ScriptDirectory(str(Path(migrate.__file__).with_name("migrations")))
    assert scripts.get_current_head() == SCHEMA_HEAD


def test_on_sqlite_events_written_before_positions_at_insert_get_theirs_on_upgrade(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    asyncio.run(migrate.upgrade(url, "0005"))
    engine = create_engine(sync_engine_url(url))
    event = (
        "INSERT INTO product_changes (type, product_id, version, occurred_at)"
        " VALUES ('product.deleted', X'00000000000000000000000000000001', 2, '2026-01-01')"
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(event)  # as 0005's code wrote it: no position yet
    asyncio.run(migrate.upgrade(url))
    with engine.begin() as connection:
        connection.exec_driver_sql(event)  # as this code writes it
        positions = connection.exec_driver_sql("SELECT id, position FROM product_changes")
        assert positions.all() == [(1, 1), (2, 2)]
    engine.dispose()


def test_on_postgresql_the_release_before_0008_can_still_write_during_a_rolling_update(
    fresh_postgres_url: str,
) -> None:
    # Its statements name no name_folded: a create must not fail, a rename must not leave the
    # folded name behind (the trigger of migration 0008).
    asyncio.run(migrate.upgrade(fresh_postgres_url))
    with psycopg.connect(fresh_postgres_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO products (id, sku, name, description, price_cents, quantity,"
            " created_at, updated_at, version)"
            " VALUES (gen_random_uuid(), 'OLD-1', 'Ωmega LAMP', NULL, 100, 1, now(), now(), 1)"
        )
        assert db.execute("SELECT name_folded FROM products").fetchone() == ("ωmega lamp",)
        db.execute("UPDATE products SET name = 'Desk ÉCLAIR', version = version + 1")
        assert db.execute("SELECT name_folded FROM products").fetchone() == ("desk éclair",)
        # This release's writes bind name_folded, and keep what they bind.
        db.execute("UPDATE products SET name = 'STRASSE', name_folded = 'strasse'")
        db.execute("UPDATE products SET name = 'Straße lamp', name_folded = 'strasse lamp'")
        assert db.execute("SELECT name_folded FROM products").fetchone() == ("strasse lamp",)
