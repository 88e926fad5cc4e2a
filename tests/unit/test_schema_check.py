"""Start-up and readiness against the database's schema revision: behind is 503, ahead serves."""

import logging
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from cme_adapters.sql.revisions import SCHEMA_HEAD, CodeRevisions, code_revisions
from cme_domain.errors import StorageUnavailable
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "src/cme_adapters/sql/migrations"
KEY = "schema-check-key-0123456789"
LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.99", "quantity": 4}


class RevisionDatabase(InMemoryDatabase):
    """The in-memory adapter with a schema revision the test sets (or an outage)."""

    revision: str | None = None
    down: bool = False

    async def schema_revision(self) -> str | None:
        if self.down:
            raise StorageUnavailable('database "cme" does not exist')
        return self.revision


@pytest.fixture
def database() -> RevisionDatabase:
    return RevisionDatabase()


@pytest.fixture
def app(database: RevisionDatabase) -> Any:
    def start() -> TestClient:
        container = Container(settings=Settings(database_url="sqlite://", api_keys=(KEY,)))
        container.database.override(providers.Object(database))
        return TestClient(create_app(container), raise_server_exceptions=False)

    return start


def script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_the_code_revisions_are_alembics_own() -> None:
    alembic = script_directory()
    code = code_revisions()
    assert code.head == alembic.get_current_head() == SCHEMA_HEAD
    assert code.known == {script.revision for script in alembic.walk_revisions()}


def write_script(folder: Path, revision: str, down: str | None) -> None:
    down_text = f'"{down}"' if down else "None"
    (folder / f"{revision}_x.py").write_text(
        f'revision: str = "{revision}"\ndown_revision: str | None = {down_text}\n'
    )


def test_the_head_is_the_revision_no_other_revises_and_two_heads_are_refused(
    tmp_path: Path,
) -> None:
    write_script(tmp_path, "0001", None)
    write_script(tmp_path, "0002", "0001")
    assert code_revisions(tmp_path) == CodeRevisions("0002", frozenset({"0001", "0002"}))
    write_script(tmp_path, "0003", "0001")
    with pytest.raises(ValueError, match="2 heads"):
        code_revisions(tmp_path)


@pytest.mark.parametrize(
    ("database_at", "behind"),
    [(None, True), ("0001", True), ("0002", False), ("0003", False)],
    ids=["never-migrated", "older", "same", "newer-release"],
)
def test_behind_means_never_migrated_or_an_older_revision_of_this_code(
    database_at: str | None, behind: bool
) -> None:
    code = CodeRevisions("0002", frozenset({"0001", "0002"}))
    assert code.is_behind(database_at) is behind


def test_a_database_never_migrated_is_503_run_cme_migrate_never_500(
    app: Any, database: RevisionDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cme"), app() as client:
        for response in (
            client.get("/db-check"),
            client.get("/products"),
            client.get("/products/01a235a8-5a47-7d2b-aea0-b94af8dd911e"),
            client.post("/products", json=LAMP, headers={"X-API-Key": KEY}),
        ):
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["type"] == "urn:cme:problem:schema-behind"
            assert body["detail"].endswith("run cme migrate")
            assert response.headers["retry-after"].isdigit()
        assert client.get("/health").status_code == 200
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"the database schema is not migrated; this release needs {SCHEMA_HEAD}: run cme migrate"
    ]
    assert database.store.products == {}


def test_serving_resumes_once_cme_migrate_has_run(app: Any, database: RevisionDatabase) -> None:
    with app() as client:
        assert client.get("/products").status_code == 503
        database.revision = SCHEMA_HEAD
        assert client.get("/db-check").status_code == 200
        assert client.get("/products").status_code == 200


def test_a_schema_from_a_newer_release_keeps_serving(app: Any, database: RevisionDatabase) -> None:
    database.revision = "9999"  # migrated by a release ahead of this one, during its rollout
    with app() as client:
        assert client.get("/db-check").status_code == 200
        assert client.post("/products", json=LAMP, headers={"X-API-Key": KEY}).status_code == 201


def test_a_database_unreachable_at_start_up_is_one_warning_naming_the_cause_then_503(
    app: Any, database: RevisionDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    database.down = True
    with caplog.at_level(logging.WARNING, logger="cme"), app() as client:
        started = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len([m for m in started if "database" in m]) == 1
        assert 'database "cme" does not exist' in started[0]
        response = client.get("/products")
        assert response.status_code == 503
        assert response.json()["type"] == "urn:cme:problem:database-unavailable"
        database.down, database.revision = False, SCHEMA_HEAD
        assert client.get("/products").status_code == 200
