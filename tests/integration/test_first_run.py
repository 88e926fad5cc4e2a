"""A first run as a new user makes it: a database never migrated, missing, or unreachable."""

import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from cme_adapters.sql.revisions import SCHEMA_HEAD
from tests.conftest import DEFAULT_SERVER
from tests.integration.server import CME, running_cme

SERVER = os.environ.get("TEST_DATABASE_URL") or DEFAULT_SERVER
# PYTHONPATH too, so a checkout run with a shared virtualenv runs its own code.
INHERITED = {k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ}


@pytest.fixture
def unmigrated_url() -> Iterator[str]:
    """A database of its own that nobody has migrated."""
    name = f"cme_first_run_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def lines(log: Path, severity: str) -> list[str]:
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [r["message"] for r in records if r["severity"] == severity and r["logger"] == "cme"]


def test_an_unmigrated_postgresql_is_503_run_cme_migrate_until_migrated(
    unmigrated_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": unmigrated_url, "API_KEY": "first-run-key-0123456789"}
    log = tmp_path / "cme.log"
    with running_cme(env, tmp_path, log) as (base_url, _):
        for path in ("/db-check", "/products", "/products/01a235a8-5a47-7d2b-aea0-b94af8dd911e"):
            status, body = get(base_url + path)
            assert status == 503, body
            assert body["detail"].endswith("run cme migrate"), body
        migrated = subprocess.run(
            [CME, "migrate"],
            env={**INHERITED, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert migrated.returncode == 0, migrated.stderr
        assert get(f"{base_url}/db-check")[0] == 200
        assert get(f"{base_url}/products") == (200, {"items": [], "next_cursor": None})
    assert lines(log, "ERROR") == [
        f"the database schema is not migrated; this release needs {SCHEMA_HEAD}: run cme migrate"
    ]
    assert "Traceback" not in log.read_text()


def test_a_missing_database_is_one_warning_naming_it_and_migrate_says_how_to_create_it(
    tmp_path: Path,
) -> None:
    missing = make_url(SERVER).set(database=f"cme_missing_{uuid.uuid4().hex[:8]}")
    url = missing.render_as_string(hide_password=False)
    log = tmp_path / "cme.log"
    with running_cme({"DATABASE_URL": url}, tmp_path, log) as (base_url, _):
        assert get(f"{base_url}/db-check")[0] == 503
    warnings = [m for m in lines(log, "WARNING") if "database" in m]
    assert len(warnings) == 1, warnings
    assert f'database "{missing.database}" does not exist' in warnings[0]
    migrate = subprocess.run(
        [CME, "migrate"],
        env={**INHERITED, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrate.returncode == 1
    assert f'CREATE DATABASE "{missing.database}"' in migrate.stderr
