"""scripts/backup.sh and scripts/restore.sh: a real round trip through pg_dump and pg_restore.

The service writes a catalogue, a ledger and a change feed (part of it pruned), hands out page
and feed cursors; the dump of that database, restored under another role into a new database,
must then answer every one of those requests as the original did, and go on from there.
"""

import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.integration.server import CME, running_cme

ROOT = Path(__file__).resolve().parents[2]
BACKUP = ROOT / "scripts" / "backup.sh"
RESTORE = ROOT / "scripts" / "restore.sh"
API_KEY = "backup-key-0123456789abcdef"
AUTH = {"X-API-Key": API_KEY}
FEED = "/products/changes"
# Every character that means something in a URL: it must reach the server as it is.
PASSWORD = "p@ss:w/rd%?#"
TABLES = {
    "alembic_version",
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

# (status, ETag, Location, Idempotent-Replayed, body) of one answer.
Answer = tuple[int, str | None, str | None, str | None, Any]


@pytest.fixture(scope="module", autouse=True)
def client_tools() -> None:
    missing = [name for name in ("pg_dump", "pg_restore", "psql") if shutil.which(name) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not on PATH: install the PostgreSQL client tools "
            "(Debian: apt-get install postgresql-client), at least the server's major version",
            pytrace=False,
        )


class Server:
    """Databases and one login role on the test server, all dropped when the module ends."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.databases: list[str] = []
        self.roles: list[str] = []

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def url(self, database: str, role: str | None = None) -> str:
        url = make_url(self.admin_url).set(database=database)
        if role is not None:
            url = url.set(username=role, password=PASSWORD)
        return url.render_as_string(hide_password=False)

    def role(self) -> str:
        """A role with no privilege but its login: what owns a restored database."""
        name = f"cme_restorer_{uuid.uuid4().hex[:8]}"
        with self.admin() as admin:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(PASSWORD)
                )
            )
        self.roles.append(name)
        return name

    def database(self, owner: str | None = None) -> str:
        """A new empty database and the URL that logs in to it as its owner."""
        name = f"cme_backup_{uuid.uuid4().hex[:10]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner is not None:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        with self.admin() as admin:
            admin.execute(statement)
        self.databases.append(name)
        return self.url(name, owner)

    def drop_all(self) -> None:
        with self.admin() as admin:
            for name in self.databases:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                admin.execute(drop.format(sql.Identifier(name)))
            for role in self.roles:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def server(postgres_url: str) -> Iterator[Server]:
    created = Server(postgres_url)
    yield created
    created.drop_all()


@pytest.fixture(scope="module")
def restorer(server: Server) -> str:
    return server.role()


def inherited() -> dict[str, str]:
    # PYTHONPATH passes through, so a checkout run against a shared venv runs its own code.
    return {k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ}


def run(*command: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        env={**inherited(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def cme_migrate(url: str) -> subprocess.CompletedProcess[str]:
    return run(CME, "migrate", DATABASE_URL=url, LOG_LEVEL="INFO", LOG_FORMAT="console")


def one(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url) as db:
        row = db.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in rows}


def answer(response: httpx.Response) -> Answer:
    headers = response.headers
    return (
        response.status_code,
        headers.get("etag"),
        headers.get("location"),
        headers.get("idempotent-replayed"),
        response.json() if response.content else None,
    )


EVENT = (
    "type, product_id, version, occurred_at, sku, name, description, price_cents, quantity,"
    " created_at, updated_at"
)
SALE = {"delta": -1, "reason": "sale", "reference": "order-7"}


def lamp(sku: str, quantity: int = 1, price: str = "10.00") -> dict[str, Any]:
    return {"sku": sku, "name": f"Lamp {sku}", "price": price, "quantity": quantity}


@dataclass(frozen=True)
class Issued:
    """What the service wrote and handed out before the backup."""

    products: list[str]  # ids, the deleted one included
    listing_cursor: str  # GET /products?limit=2's next_cursor: signed with the cursor secret
    before_prune: str  # a feed cursor behind the retention horizon
    feed_cursors: list[str]  # every feed cursor a consumer was answered with, in order
    created_key: str  # the Idempotency-Key of one create, and its body
    created_body: dict[str, Any]
    stock_key: str  # the Idempotency-Key of one stock adjustment


@dataclass(frozen=True)
class Catalogue:
    url: str
    dump: Path
    backup: subprocess.CompletedProcess[str]
    issued: Issued
    answers: list[Answer]  # what the original database answered to `replay`, after the backup


def replay(http: httpx.Client, issued: Issued) -> list[Answer]:
    """Every read, and every retry of a keyed write, whose answer must survive a restore."""
    first = issued.products[0]
    requests = [http.build_request("GET", f"/products/{pid}") for pid in issued.products]
    requests += [
        http.build_request("GET", f"/products/{pid}/stock-adjustments") for pid in issued.products
    ]
    requests += [
        http.build_request("GET", "/products", params={"limit": 2}),
        http.build_request(
            "GET", "/products", params={"limit": 2, "cursor": issued.listing_cursor}
        ),
        http.build_request("GET", FEED, params={"cursor": issued.before_prune}),
        http.build_request("GET", FEED),
        *(
            http.build_request("GET", FEED, params={"cursor": cursor, "limit": 2})
            for cursor in issued.feed_cursors
        ),
        http.build_request("GET", FEED, params={"cursor": "latest"}),
        http.build_request(
            "POST",
            "/products",
            json=issued.created_body,
            headers={**AUTH, "Idempotency-Key": issued.created_key},
        ),
        http.build_request(
            "POST",
            f"/products/{first}/stock-adjustments",
            json=SALE,
            headers={**AUTH, "Idempotency-Key": issued.stock_key},
        ),
    ]
    return [answer(http.send(request)) for request in requests]


def serve(url: str, log: Path) -> Any:
    env = {"DATABASE_URL": url, "API_KEY": API_KEY, "LOG_LEVEL": "WARNING"}
    return running_cme(env, log.parent, log)


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def catalogue(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    work = tmp_path_factory.mktemp("backup")
    url = server.database()
    migrated = cme_migrate(url)
    assert migrated.returncode == 0, migrated.stderr
    with (
        serve(url, work / "source.log") as (base_url, _),
        httpx.Client(base_url=base_url, timeout=10) as http,
    ):
        before_prune = expect(http.get(FEED, params={"cursor": "latest"}), 200)["next_cursor"]
        # Three products whose events retention then deletes: the horizon moves past them.
        created_body = lamp("OLD-0", quantity=5)
        created_key = "create-old-0"
        old = [
            expect(
                http.post(
                    "/products", json=created_body, headers={**AUTH, "Idempotency-Key": created_key}
                ),
                201,
            )["id"]
        ]
        old += [
            expect(http.post("/products", json=lamp(f"OLD-{n}"), headers=AUTH), 201)["id"]
            for n in (1, 2)
        ]
        expect(http.get(FEED), 200)  # gives the events their positions
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("UPDATE product_changes SET occurred_at = occurred_at - interval '30 days'")
        pruned = run(CME, "prune-changes", DATABASE_URL=url, CHANGES_RETENTION_DAYS="7")
        assert pruned.returncode == 0, pruned.stderr
        assert "removed 3 change events" in pruned.stdout
        after_prune = expect(http.get(FEED, params={"cursor": "latest"}), 200)["next_cursor"]
        new = [
            expect(
                http.post("/products", json=lamp(f"NEW-{n}", price=f"{n}.50"), headers=AUTH), 201
            )["id"]
            for n in range(3)
        ]
        # A writer that commits late (here by hand: a copy of the newest event) takes its id
        # before the PUT's and its position after: positions are not in id order, so a restore
        # must bring them back, not number the events again.
        with psycopg.connect(url) as slow:
            slow.execute(
                f"INSERT INTO product_changes ({EVENT}) SELECT {EVENT} FROM product_changes"
                " ORDER BY id DESC LIMIT 1"
            )
            expect(
                http.put(f"/products/{old[1]}", json=lamp("OLD-1", quantity=9), headers=AUTH), 200
            )
            expect(http.get(FEED), 200)
        order = "SELECT array_agg(id ORDER BY position) FROM product_changes"
        ids = one(url, order)
        assert ids != sorted(ids)
        stock_key = "sale-order-7"
        expect(
            http.post(
                f"/products/{old[0]}/stock-adjustments",
                json=SALE,
                headers={**AUTH, "Idempotency-Key": stock_key},
            ),
            201,
        )
        expect(
            http.post(
                f"/products/{new[0]}/stock-adjustments",
                json={"delta": 4, "reason": "restock"},
                headers=AUTH,
            ),
            201,
        )
        assert http.delete(f"/products/{old[2]}", headers=AUTH).status_code == 204
        # A consumer reads the feed in pages, as far as it goes.
        feed_cursors = [after_prune]
        while True:
            page = expect(http.get(FEED, params={"cursor": feed_cursors[-1], "limit": 2}), 200)
            if not page["items"]:
                break
            feed_cursors.append(page["next_cursor"])
        assert len(feed_cursors) >= 4
        # Written after the consumer's last read, so the backup holds an event nobody has seen.
        patched = http.patch(
            f"/products/{new[1]}",
            content=b'{"price": "7.25"}',
            headers={**AUTH, "Content-Type": "application/merge-patch+json"},
        )
        expect(patched, 200)
        listing_cursor = expect(http.get("/products", params={"limit": 2}), 200)["next_cursor"]
        assert listing_cursor is not None

        dump = work / "cme.dump"
        # The URL form the service also accepts, which libpq does not.
        backup = run(
            BACKUP, dump, DATABASE_URL=url.replace("postgresql://", "postgresql+psycopg://", 1)
        )
        issued = Issued(
            products=[*old, *new],
            listing_cursor=listing_cursor,
            before_prune=before_prune,
            feed_cursors=feed_cursors,
            created_key=created_key,
            created_body=created_body,
            stock_key=stock_key,
        )
        answers = replay(http, issued)
    return Catalogue(url=url, dump=dump, backup=backup, issued=issued, answers=answers)


def restore(url: str, dump: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run(RESTORE, *options, dump, DATABASE_URL=url)


def test_the_backup_is_written_for_its_owner_alone(catalogue: Catalogue) -> None:
    assert catalogue.backup.returncode == 0, catalogue.backup.stderr
    revision = one(catalogue.url, "SELECT version_num FROM alembic_version")
    assert f"schema revision {revision}" in catalogue.backup.stdout
    assert stat.S_IMODE(catalogue.dump.stat().st_mode) == 0o600
    assert not catalogue.dump.with_name("cme.dump.partial").exists()


def test_the_restored_database_answers_as_the_original_and_goes_on_from_there(
    catalogue: Catalogue, server: Server, restorer: str, tmp_path: Path
) -> None:
    target = server.database(owner=restorer)
    restored = restore(target, catalogue.dump)
    assert restored.returncode == 0, restored.stderr
    assert restored.stderr == ""

    revision = one(catalogue.url, "SELECT version_num FROM alembic_version")
    assert one(target, "SELECT version_num FROM alembic_version") == revision
    assert f"schema revision {revision}" in restored.stdout
    with psycopg.connect(target) as db:
        owners = db.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
        assert dict(owners.fetchall()) == dict.fromkeys(TABLES, restorer)
    migrated = cme_migrate(target)
    assert migrated.returncode == 0, migrated.stderr
    assert "Running upgrade" not in migrated.stdout + migrated.stderr
    assert migrated.stdout.rstrip().endswith("is up to date")

    newest_id = one(target, "SELECT max(id) FROM product_changes")
    assert newest_id == one(catalogue.url, "SELECT max(id) FROM product_changes")
    # Worth comparing: the deleted product (and its ledger), the cursor behind the horizon, and
    # both keyed writes answered as replays, not applied again.
    statuses = [status for status, *_ in catalogue.answers]
    assert (statuses.count(404), statuses.count(410)) == (2, 1)
    assert [replayed for *_, replayed, _ in catalogue.answers[-2:]] == ["true", "true"]
    with (
        serve(target, tmp_path / "restored.log") as (base_url, _),
        httpx.Client(base_url=base_url, timeout=10) as http,
    ):
        answers = replay(http, catalogue.issued)
        for got, want in zip(answers, catalogue.answers, strict=True):
            assert got == want
        # The cursors were taken before the backup; a new product's event comes after them all.
        end = expect(http.get(FEED, params={"cursor": catalogue.issued.feed_cursors[-1]}), 200)
        last = end["items"][-1]["sequence"]
        fresh = expect(http.post("/products", json=lamp("AFTER-RESTORE"), headers=AUTH), 201)
        after = expect(http.get(FEED, params={"cursor": end["next_cursor"]}), 200)
        assert [(e["type"], e["product_id"], e["sequence"]) for e in after["items"]] == [
            ("product.created", fresh["id"], last + 1)
        ]
    event_id = one(target, "SELECT id FROM product_changes WHERE product_id = %s", fresh["id"])
    assert event_id > newest_id


def test_restore_refuses_a_database_that_holds_the_catalogue_unless_told_to_clean(
    catalogue: Catalogue, server: Server, restorer: str
) -> None:
    target = server.database(owner=restorer)
    assert cme_migrate(target).returncode == 0
    with psycopg.connect(target, autocommit=True) as db:
        db.execute("INSERT INTO service_secrets VALUES ('left-behind', 'x')")

    refused = restore(target, catalogue.dump)

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1
    assert "already holds a products table" in refused.stderr
    assert "--clean" in refused.stderr
    assert one(target, "SELECT count(*) FROM service_secrets") == 1

    cleaned = restore(target, catalogue.dump, "--clean")

    assert cleaned.returncode == 0, cleaned.stderr
    secrets = "SELECT array_agg(name || '=' || value ORDER BY name) FROM service_secrets"
    assert one(target, secrets) == one(catalogue.url, secrets)
    products = "SELECT array_agg(id ORDER BY id) FROM products"
    assert one(target, products) == one(catalogue.url, products)


def test_a_truncated_dump_fails_and_leaves_the_database_empty(
    catalogue: Catalogue, server: Server, restorer: str, tmp_path: Path
) -> None:
    target = server.database(owner=restorer)
    truncated = tmp_path / "truncated.dump"
    # The tail is the last table's data: everything before it is created, then rolled back.
    truncated.write_bytes(catalogue.dump.read_bytes()[:-16])

    failed = restore(target, truncated)

    assert failed.returncode == 1
    assert "nothing was restored" in failed.stderr.splitlines()[-1]
    assert tables(target) == set()


def test_a_file_that_is_no_dump_is_refused_before_the_database_is_touched(
    server: Server, restorer: str, tmp_path: Path
) -> None:
    target = server.database(owner=restorer)
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(b"PGDMP but not really\n" * 100)

    failed = restore(target, garbage)

    assert failed.returncode == 1
    assert len(failed.stderr.splitlines()) == 1
    assert "is not a dump" in failed.stderr
    assert tables(target) == set()


def test_a_dump_of_some_other_database_is_refused(
    server: Server, restorer: str, tmp_path: Path
) -> None:
    other = tmp_path / "other.dump"
    dumped = run("pg_dump", "--format=custom", f"--file={other}", "-d", server.database())
    assert dumped.returncode == 0, dumped.stderr
    target = server.database(owner=restorer)

    failed = restore(target, other)

    assert failed.returncode == 1
    assert failed.stderr.endswith(
        "holds no alembic_version table: it is not a dump of a cme database\n"
    )
    assert tables(target) == set()


def stub_tools(folder: Path, **scripts: str) -> Path:
    """A PG_BIN of the real client tools, some replaced by a shell script."""
    folder.mkdir()
    for name in ("pg_dump", "pg_restore", "psql"):
        stub = folder / name
        if name in scripts:
            stub.write_text(f"#!/bin/sh\n{scripts[name]}\n")
            stub.chmod(0o755)
        else:
            real = shutil.which(name)
            assert real is not None
            stub.symlink_to(real)
    return folder


def test_backup_refuses_a_pg_dump_older_than_the_server(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    major = one(catalogue.url, "SELECT current_setting('server_version_num')::int / 10000")
    older = f'[ "$1" = --version ] && echo "pg_dump (PostgreSQL) {major - 1}.9" && exit 0; exit 3'
    tools = stub_tools(tmp_path / "bin", pg_dump=older)
    dump = tmp_path / "old.dump"

    refused = run(BACKUP, dump, DATABASE_URL=catalogue.url, PG_BIN=str(tools))

    assert refused.returncode == 1
    assert len(refused.stderr.splitlines()) == 1
    assert f"pg_dump {major - 1} is older than the PostgreSQL {major} server" in refused.stderr
    assert list(tmp_path.glob("old.dump*")) == []


def test_the_password_goes_to_libpq_by_the_environment_not_the_command_line(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "seen"
    record = f'printf "%s\\n" "$PGPASSWORD" "$@" > {seen}; echo "psql: error: stub" >&2; exit 2'
    tools = stub_tools(tmp_path / "bin", psql=record)
    password = "p%40ss%3Aw%2Frd%25%3F%23%5C"  # p@ss:w/rd%?#\ as the service's URL encodes it

    failed = run(
        BACKUP,
        tmp_path / "x.dump",
        DATABASE_URL=f"postgresql+psycopg://cme:{password}@db.example:5433/cme?sslmode=require",
        PG_BIN=str(tools),
    )

    assert (failed.returncode, failed.stderr) == (1, "backup: cannot query the database: stub\n")
    given, *args = seen.read_text().splitlines()
    assert given == "p@ss:w/rd%?#\\"
    assert "postgresql://cme@db.example:5433/cme?sslmode=require" in args
    assert not [a for a in args if "p@ss" in a or "p%40ss" in a]
