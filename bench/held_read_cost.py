"""What counting holds costs a list page on PostgreSQL, statement by statement.

    PYTHONPATH=src .venv/bin/python bench/held_read_cost.py [--rows 20000] [--rounds 10]

On a fresh migrated database of --rows products (none reserved), the first page (limit 20,
created_at order) as three statements, run 2000 times each per round, alternating:
  none      the product columns alone (the page before reservations)
  flag      and `held_until > now` (what statements.page_statement reads: holds.may_hold)
  subquery  and a CASE with the sum over the live lines (the first design; never executed
            for an unreserved product, but planned with every execution)
Printed: the median time of one page, over the rounds, and each as a ratio of `none`.
"""

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

import psycopg
from sqlalchemy.engine import make_url

from cme_adapters.postgres.compiled import compiled
from cme_adapters.sql import migrate, statements
from cme_domain.listing import ProductQuery

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SUBQUERY = (
    ", CASE WHEN (products.held_until > %(now)s::TIMESTAMP WITH TIME ZONE) THEN (SELECT"
    " coalesce(sum(reservation_lines.quantity), 0) FROM reservation_lines WHERE"
    " reservation_lines.product_id = products.id AND reservation_lines.held_until >"
    " %(now)s::TIMESTAMP WITH TIME ZONE) ELSE 0 END AS held"
)


def variants() -> dict[str, str]:
    flag = compiled(statements.page_statement(ProductQuery(limit=20)))
    columns, rest = flag.split(", coalesce(", 1)
    tail = rest.split("AS may_hold", 1)[1]
    return {"none": columns + tail, "flag": flag, "subquery": columns + SUBQUERY + tail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pages", type=int, default=2000)
    args = parser.parse_args()
    name = f"cme_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(migrate.upgrade(url))
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                "INSERT INTO products (id, sku, name, name_folded, price_cents, quantity,"
                " created_at, updated_at, version) SELECT gen_random_uuid(), 'S' || g, 'n', 'n',"
                " 100, 5, now() - g * interval '1 second', now(), 1"
                " FROM generate_series(1, %s) g",
                (args.rows,),
            )
            db.execute("ANALYZE products")
            sqls = variants()
            times: dict[str, list[float]] = {k: [] for k in sqls}
            for number in range(args.rounds):
                order = list(sqls.items())
                for kind, sql in order if number % 2 == 0 else reversed(order):
                    started = time.perf_counter()
                    for _ in range(args.pages):
                        params: dict[str, object] = {"limit": 21}
                        if kind != "none":
                            params["now"] = datetime.now(UTC)
                        db.execute(sql, params).fetchall()
                    times[kind].append((time.perf_counter() - started) / args.pages * 1e6)
        base = statistics.median(times["none"])
        for kind, values in times.items():
            median = statistics.median(values)
            print(f"{kind:>8}: {median:6.1f} us per page, {median / base:.2f}x of none")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
