"""`cme import` against a served instance on PostgreSQL: batches, summary, exit status, resume,
and lines it cannot send."""

import json
import os
import subprocess
import urllib.request
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
    assert "5 created, 0 replaced, 0 already imported, 5 rejected (1 batch)" in result.stdout
    assert "line 8 price: must not be negative" in result.stderr
    assert count(empty_postgres_url, "products") == 5
    with psycopg.connect(empty_postgres_url) as db:
        skus = {sku for (sku,) in db.execute("SELECT sku FROM products").fetchall()}
    assert skus == {f"C-{n}" for n in range(5)}


def test_lines_that_cannot_be_read_are_refused_by_number_and_the_run_goes_on_to_its_summary(
    base_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    good = [
        json.dumps({"sku": f"G-{n}", "name": "n", "price": "1.00", "quantity": 1}).encode()
        for n in range(5)
    ]
    bad = [
        rb'{"sku":"B-1","name":"\ud800","price":"1.00","quantity":1}',
        b'{"sku":"B-2","name":"n","price":"1.00","quantity":123456789012345678901234}',
        b'{"sku":"B-3","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"sku":"B-4","name":"\xff","price":"1.00","quantity":1}',
    ]
    lines = [good[0], *(x for pair in zip(bad, good[1:], strict=True) for x in pair)]
    feed = tmp_path / "products.ndjson"
    feed.write_bytes(b"\n".join(lines) + b"\n")
    result = cme_import(base_url, feed, "--batch-size", "1")
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert "9 products in 9 batches" in result.stdout
    assert "5 created, 0 replaced, 0 already imported, 4 rejected (4 batches)" in result.stdout
    assert "line 2 name: must not contain a lone surrogate" in result.stderr
    assert "line 4 quantity: must be between 0 and 2147483647" in result.stderr
    assert "line 6: JSON nested deeper than 30 levels" in result.stderr
    assert "line 8: not valid UTF-8" in result.stderr
    csv_feed = tmp_path / "products.csv"
    csv_feed.write_text(
        "sku,name,description,price,quantity\nC-1,a,,1.00,²\n"
        f"C-2,b,{'x' * 140_000},1.00,1\nC-3,c,,1.00,3\n"
    )
    result = cme_import(base_url, csv_feed, "--batch-size", "1")
    assert "Traceback" not in result.stderr
    assert "1 created, 0 replaced, 0 already imported, 2 rejected (2 batches)" in result.stdout
    assert "line 2 quantity: must be an integer" in result.stderr
    assert "line 3: field larger than field limit (131072)" in result.stderr
    assert count(empty_postgres_url, "products") == 6


def test_a_feed_of_large_products_is_sent_in_batches_under_the_routes_byte_limit(
    base_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    feed = tmp_path / "products.ndjson"
    with feed.open("w", encoding="utf-8") as out:
        for n in range(500):
            product = {
                "sku": f"J-{n}",
                "name": "商品",
                "description": "説明" * 2000,
                "price": "1",
                "quantity": 1,
            }
            print(json.dumps(product, ensure_ascii=False), file=out)
    assert feed.stat().st_size > 6_000_000
    result = cme_import(base_url, feed)
    assert result.returncode == 0, result.stderr
    assert "500 created, 0 replaced, 0 already imported, 0 rejected" in result.stdout
    assert count(empty_postgres_url, "products") == 500


def test_a_run_after_a_product_was_deleted_restores_it_and_the_next_run_writes_nothing(
    base_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    feed = tmp_path / "products.ndjson"
    lines = [
        json.dumps({"sku": f"D-{n}", "name": "n", "price": "1.00", "quantity": n}) for n in range(5)
    ]
    feed.write_text("\n".join(lines) + "\n")
    assert cme_import(base_url, feed).returncode == 0
    with psycopg.connect(empty_postgres_url) as db:
        (product_id,) = db.execute("SELECT id FROM products WHERE sku = 'D-2'").fetchone() or ()
    request = urllib.request.Request(
        f"{base_url}/products/{product_id}", headers={"X-API-Key": API_KEY}, method="DELETE"
    )
    with urllib.request.urlopen(request) as response:  # nosec B310  # loopback
        assert response.status == 204
    again = cme_import(base_url, feed)
    assert again.returncode == 0, again.stderr
    assert "1 created, 4 replaced, 0 already imported, 0 rejected" in again.stdout
    assert count(empty_postgres_url, "products") == 5
    third = cme_import(base_url, feed)
    assert third.returncode == 0, third.stderr
    assert "0 created, 0 replaced, 5 already imported" in third.stdout


def test_the_file_is_sent_as_written_and_the_api_decides_by_its_own_rules(
    base_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    feed = tmp_path / "products.ndjson"
    feed.write_text('{"sku":"N-1","name":"n","price":1e1,"quantity":5.0}\n')
    result = cme_import(base_url, feed)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_postgres_url) as db:
        row = db.execute("SELECT price_cents, quantity FROM products WHERE sku = 'N-1'").fetchone()
    assert row == (1000, 5)
    csv_feed = tmp_path / "products.csv"
    csv_feed.write_text(
        "sku,name,description,price,quantity\nN-2,a,,1.00,\u0663\nN-3,b,,1.00,\uff15\n"
    )
    result = cme_import(base_url, csv_feed, "--batch-size", "1")
    assert result.returncode == 1
    assert "line 2 quantity: must be an integer" in result.stderr
    assert "line 3 quantity: must be an integer" in result.stderr
    assert count(empty_postgres_url, "products") == 1


def test_control_characters_from_the_file_or_the_server_are_printed_escaped(
    base_url: str, tmp_path: Path
) -> None:
    feed = tmp_path / "products.ndjson"
    product = {"sku": "X-1", "name": "n", "price": "1.00", "\x1b[2J\rPWNED": 1}
    feed.write_text(json.dumps(product) + "\n" + '{"sku":"X-2","\\u001b]0;t\\u0007":1}\n')
    result = cme_import(base_url, feed, "--batch-size", "1")
    assert result.returncode == 1
    assert "line 1 \\x1b[2J\\rPWNED: unknown field" in result.stderr
    assert "line 2 \\x1b]0;t\\x07: unknown field" in result.stderr
    assert not any(c in result.stderr for c in "\x1b\r\x07")
    assert not any(line.startswith("PWNED") for line in result.stderr.splitlines())


@pytest.fixture
def rate_limited_url(empty_postgres_url: str, tmp_path: Path) -> Iterator[str]:
    env = {
        "DATABASE_URL": empty_postgres_url,
        "API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_BATCH": "3/2",
    }
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (url, _):
        yield url


def test_a_feed_past_the_batch_rate_limit_waits_for_it_and_writes_everything(
    rate_limited_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    feed = tmp_path / "products.ndjson"
    lines = [
        json.dumps({"sku": f"R-{n}", "name": "n", "price": "1", "quantity": 1}) for n in range(20)
    ]
    feed.write_text("\n".join(lines) + "\n")
    result = cme_import(rate_limited_url, feed, "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    assert "20 created, 0 replaced, 0 already imported, 0 rejected (0 batches)" in result.stdout
    assert "waiting" in result.stderr
    assert count(empty_postgres_url, "products") == 20


def test_a_wrong_key_or_url_stops_the_run_at_the_first_batch_with_one_line_and_a_hint(
    base_url: str, tmp_path: Path
) -> None:
    feed = tmp_path / "products.ndjson"
    lines = [
        json.dumps({"sku": f"K-{n}", "name": "n", "price": "1", "quantity": 1}) for n in range(5)
    ]
    feed.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "CME_API_KEY": "wrong-key-0123456789abcdef"}
    command = [CME, "import", str(feed), "--url", base_url, "--batch-size", "1"]
    wrong_key = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert wrong_key.returncode == 1
    assert wrong_key.stderr.splitlines() == [
        f"cme import: stopped at batch 1: HTTP 401 from {base_url}/products/batch:"
        " the API key is not valid; check --api-key or CME_API_KEY"
    ]
    assert "0 products in 0 batches" in wrong_key.stdout
    wrong_url = cme_import(f"{base_url}/products", feed, "--batch-size", "1")
    assert wrong_url.returncode == 1
    (line,) = wrong_url.stderr.splitlines()
    assert "HTTP 404" in line
    assert "--url is the service's root" in line


def test_create_mode_names_the_conflicting_skus_by_file_line(base_url: str, tmp_path: Path) -> None:
    feed = tmp_path / "products.ndjson"
    lines = [
        json.dumps({"sku": f"M-{n}", "name": "n", "price": "1", "quantity": 1}) for n in range(3)
    ]
    feed.write_text("\n".join(lines) + "\n")
    assert cme_import(base_url, feed).returncode == 0
    feed.write_text("\n".join([lines[2].replace("M-2", "M-9"), *lines[:2]]) + "\n")
    result = cme_import(base_url, feed, "--mode", "create")
    assert result.returncode == 1
    assert "HTTP 409: these skus already exist: lines 2, 3" in result.stderr
    assert "3 rejected (1 batch)" in result.stdout
