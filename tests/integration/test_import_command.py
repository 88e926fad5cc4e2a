"""`cme import` against a served instance on PostgreSQL: batches, summary, exit status, resume."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.server import CME, running_cme

API_KEY = "import-key-0123456789abcdef"


@pytest.fixture
def base_url(empty_postgres_url: str, tmp_path: Path) -> Iterator[str]:
    env = {"DATABASE_URL": empty_postgres_url, "API_KEY": API_KEY, "LOG_LEVEL": "WARNING"}
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (url, _):
        yield url


def cme_import(base_url: str, feed: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CME_API_KEY": API_KEY}
    command = [CME, "import", str(feed), "--url", base_url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def count(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as db:
        row = db.execute(f"SELECT count(*) FROM {table}").fetchone()  # nosec B608
    assert row is not None
    return int(row[0])


def test_an_ndjson_feed_is_imported_in_batches_and_a_second_run_writes_nothing_again(
    base_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    feed = tmp_path / "products.ndjson"
    lines = [
        json.dumps({"sku": f"F-{n}", "name": f"Item {n}", "price": "1.25", "quantity": n % 7})
        for n in range(2500)
    ]
    feed.write_text("\n".join(lines) + "\n")
    first = cme_import(base_url, feed, "--batch-size", "1000")
    assert first.returncode == 0, first.stderr
    assert "2500 products in 3 batches" in first.stdout
    assert "2500 created, 0 replaced, 0 already imported, 0 rejected" in first.stdout
    assert first.stderr.count("cme import: batch ") == 3
    assert count(empty_postgres_url, "products") == 2500
    # Every product starting with stock has its initial ledger entry.
    assert count(empty_postgres_url, "stock_ledger") == sum(1 for n in range(2500) if n % 7)
    again = cme_import(base_url, feed, "--batch-size", "1000")
    assert again.returncode == 0, again.stderr
    assert "0 created, 0 replaced, 2500 already imported" in again.stdout
    with psycopg.connect(empty_postgres_url) as db:
        assert db.execute("SELECT max(version) FROM products").fetchone() == (1,)


def test_a_csv_feed_with_a_bad_row_rejects_its_batch_only_and_exits_1(
    base_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    feed = tmp_path / "products.csv"
    rows = ["sku,name,description,price,quantity"]
    rows += [f"C-{n},Item {n},,2.00,{n}" for n in range(10)]
    rows[7] = "C-6,Item 6,,-1,6"  # line 8 of the file (after the header): the second batch
    feed.write_text("\n".join(rows) + "\n")
    result = cme_import(base_url, feed, "--batch-size", "5")
    assert result.returncode == 1
    assert "5 created, 0 replaced, 0 already imported, 5 rejected (1 batches)" in result.stdout
    assert "line 8 price: must not be negative" in result.stderr
    assert count(empty_postgres_url, "products") == 5
    with psycopg.connect(empty_postgres_url) as db:
        skus = {sku for (sku,) in db.execute("SELECT sku FROM products").fetchall()}
    assert skus == {f"C-{n}" for n in range(5)}
