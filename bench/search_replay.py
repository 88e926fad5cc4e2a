"""The search mode's `q` values replayed on one connection: the plain statement against the
bounded walk the PostgreSQL adapter runs, pass by pass, alternating, on the same seeded data.

    PYTHONPATH=$PWD/src BENCH_SERVICE_VENV=.venv .venv/bin/python bench/search_replay.py \\
        --rows 1000000 --orders created_at:asc:1000,price:asc:300,name:desc:200

Each order is sort:direction:how many of the seeded fragments. Times are the client's, from
sending the statement to the last row, planning included, statements bound server-side (as
psycopg sends the service's) and not prepared. The two statements' answers are compared.

With `--before-src ../other/src`, the passes are that tree's bounded statement against this
one's instead, on this tree's schema with the trigram index of migration 0003 (`lower(name)`)
built beside it, so that each statement has the index it was written for. The seeded names are
ASCII, which both trees fold alike.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import psycopg

from bench import OUT, bench_database, log
from cme_adapters.postgres import search
from cme_adapters.postgres.compiled import compiled
from cme_adapters.sql import statements
from cme_domain.listing import ProductQuery, SortField, SortOrder

PASSES = ("plain", "bounded", "plain", "bounded")
TREES = ("before", "after", "before", "after")
_OLD_INDEX = (
    "CREATE INDEX ix_products_name_trgm ON products USING gin (lower(name) gin_trgm_ops)",
    "ALTER INDEX ix_products_name_trgm ALTER COLUMN 1 SET STATISTICS 1000",
    "ANALYZE products",
)
_COMPILE = (
    "import sys\n"
    "from cme_adapters.postgres import search\n"
    "from cme_adapters.postgres.compiled import compiled\n"
    "from cme_domain.listing import SortField, SortOrder\n"
    "statement = search.search_page_of(\n"
    "    search.WALK, SortField(sys.argv[1]), SortOrder(sys.argv[2]), after=False\n"
    ")\n"
    "print(compiled(statement), end='')\n"
)


def compiled_in(src: str, sort: SortField, order: SortOrder) -> str:
    """The bounded statement as the tree at src compiles it."""
    env = {**os.environ, "PYTHONPATH": src}
    argv = [sys.executable, "-c", _COMPILE, sort.value, order.value]
    return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout


def replay(
    db: psycopg.Connection[Any], sql: str, queries: list[ProductQuery]
) -> tuple[list[float], list[list[Any]]]:
    times: list[float] = []
    answers: list[list[Any]] = []
    for query in queries:
        params = statements.page_parameters(query, datetime.now(UTC))
        started = time.perf_counter()
        rows = db.execute(sql, params, prepare=False).fetchall()
        times.append((time.perf_counter() - started) * 1000)
        answers.append([row[0] for row in rows])
    return times, answers


def row(order: str, label: str, times: list[float]) -> str:
    ranked = sorted(times)

    def at(share: float) -> float:
        return ranked[min(len(ranked) - 1, int(len(ranked) * share))]

    figures = [at(0.5), at(0.9), at(0.99), ranked[-1], statistics.mean(ranked)]
    return f"| {order} | {label} | " + " | ".join(f"{f:.2f}" for f in figures) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--orders", default="created_at:asc:1000,price:asc:300,name:desc:200")
    parser.add_argument("--before-src", help="replay that tree's bounded statement against ours")
    args = parser.parse_args()
    passes = TREES if args.before_src else PASSES
    lines = []
    with bench_database(f"cme_bench_{secrets.token_hex(4)}", args.rows) as url:
        fragments = [unquote(q) for q in (OUT / "search-queries.txt").read_text().splitlines()]
        with psycopg.connect(url, autocommit=True) as db:
            if args.before_src:
                for statement in _OLD_INDEX:
                    db.execute(statement)
            for spec in args.orders.split(","):
                field, direction, count = spec.split(":")
                sort, order = SortField(field), SortOrder(direction)
                queries = [
                    ProductQuery(name_contains=q, sort=sort, order=order)
                    for q in fragments[: int(count)]
                ]
                bounded = compiled(search.search_page_of(search.WALK, sort, order, after=False))
                sql = {"bounded": bounded, "after": bounded}
                if args.before_src:
                    sql["before"] = compiled_in(args.before_src, sort, order)
                else:
                    sql["plain"] = compiled(statements.page_of(sort, order, after=False, name=True))
                answered: dict[str, list[list[Any]]] = {}
                for label in passes:
                    log(f"{spec}: {label}")
                    times, answers = replay(db, sql[label], queries)
                    answered.setdefault(label, answers)
                    lines.append(row(f"{field} {direction} ({count})", label, times))
                first, second = answered.values()
                if first != second:
                    raise RuntimeError(f"{spec}: the two statements answered differently")
    print("| order (fragments) | statement | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
