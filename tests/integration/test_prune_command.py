"""`cme prune` deletes expired idempotency records and keeps the live ones."""

import subprocess
from pathlib import Path

import psycopg

from tests.integration.server import CME

PRODUCT = "00000000-0000-7000-8000-000000000001"


def test_cme_prune_removes_only_expired_idempotency_records(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(empty_postgres_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO products VALUES"
            " (%s, 'P-1', 'Lamp', NULL, 100, 1, now(), now(), 1, 'lamp')",
            (PRODUCT,),
        )
        for key, expires in (("old", "-1 hour"), ("older", "-1 day"), ("live", "1 hour")):
            db.execute(
                "INSERT INTO idempotency_keys VALUES ('api-key:default', %s, %s, %s, now(),"
                " now() + %s::interval)",
                (key, "f" * 64, PRODUCT, expires),
            )
    runs = [
        subprocess.run(
            [CME, "prune"],
            env={"DATABASE_URL": empty_postgres_url, "PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    assert runs == [
        "cme: removed 2 expired idempotency records\n",
        "cme: removed 0 expired idempotency records\n",
    ]
    with psycopg.connect(empty_postgres_url) as db:
        assert db.execute("SELECT key FROM idempotency_keys").fetchall() == [("live",)]
