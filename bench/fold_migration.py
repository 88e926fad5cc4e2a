"""How long migration 0008 (folded names, `q` in all of Unicode) takes on a full catalogue.

    PYTHONPATH=src .venv/bin/python bench/fold_migration.py [--rows 1000000] [--names ascii]

In a PostgreSQL database of its own (dropped after): the schema up to 0002, --rows products
filled server-side, then 0003..0007 and 0008 each timed. `--names ascii` gives names like
"Product 3f2a9c1e", which PostgreSQL folds in the table's rewrite; `--names unicode` gives
"Éclair 3f2a9c1e", which Python folds 5,000 to a statement: the two ends of the range.
"""

import argparse
import asyncio
import os
import time
import uuid

import psycopg
from sqlalchemy.engine import make_url

from cme_adapters.sql import migrate

FILL = """
INSERT INTO products (id, sku, name, description, price_cents, quantity,
                      created_at, updated_at, version)
SELECT gen_random_uuid(), 'S-' || i, %s || substr(md5(i::text), 1, 8), NULL,
       i %% 100000, i %% 1000, now(), now(), 1
FROM generate_series(1, %s) AS i
"""
PREFIX = {"ascii": "Product ", "unicode": "Éclair "}


def timed(url: str, revision: str) -> float:
    started = time.monotonic()
    asyncio.run(migrate.upgrade(url, revision))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--names", choices=sorted(PREFIX), default="ascii")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    name = f"cme_fold_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(migrate.upgrade(url, "0002"))
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(FILL, (PREFIX[args.names], args.rows))
        before = timed(url, "0007")
        fold = timed(url, "0008")
        with psycopg.connect(url) as connection:
            left = connection.execute("SELECT count(*) FROM products WHERE name_folded IS NULL")
            assert left.fetchone() == (0,)
        print(f"{args.rows} rows, {args.names} names: 0003..0007 {before:.1f} s, 0008 {fold:.1f} s")
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
