"""The benchmark: cme against a FastAPI reference and a bare-ASGI floor, one scenario at a time.

Run by `make bench` through bench/run.sh (see bench/README.md):

    python bench/bench.py run  [--duration 10] [--connections 64] [--scenarios get,post]
    python bench/bench.py soak [--requests 5000000] [--max-minutes 240]
    python bench/bench.py telemetry [--scenarios health,get,post]
    python bench/bench.py ratelimit [--scenarios get]
    python bench/bench.py tracing [--scenarios get,post]
    python bench/bench.py search [--rows 1000000] [--rounds 3]
    python bench/bench.py baseline --baseline-src ../other/src [--scenarios post,put]
    python bench/bench.py batch   (products/s: single POSTs against 1000-product batches)

`run` creates a PostgreSQL database cme_bench_<random> with 100,000 products, starts `cme serve
--workers 2` (INFO access log to bench/out/service.log), the FastAPI reference bench/fastapi_ref
(uvicorn, 2 workers, its default access log to bench/out/fastapi.log) and bench/floor.py (2
workers), checks that all three answer the same bytes and that writes work on the reference,
measures start-up time to /db-check 200, runs wrk on each scenario against each server in turn,
samples worker RSS, profiles with py-spy, and writes bench/out/report.md and results.json. The
database is dropped at the end, even on failure.
"""

import argparse
import hashlib
import http.server
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import checks
import psycopg
from procs import CpuMeter, Server, free_port, http_get, rss_kib
from profile_summary import summarise
from report import TARGETS, render, verdicts
from search_queries import NAME_SQL, check_answers, encoded, sample_queries
from search_report import search_report
from soak_summary import summarise as summarise_soak
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
VENV_BIN = Path(sys.executable).parent
# The service runs from a venv of its runtime dependencies only, as in the image: installed
# beside it, test and bench packages (pydantic, yaml) get imported by dependency_injector and
# would add their memory to the service's workers.
SERVICE_BIN = Path(os.environ.get("BENCH_SERVICE_VENV", BENCH / ".venv-service")) / "bin"
LUA = BENCH / "scenario.lua"
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
API_KEY = "bench-key-" + secrets.token_hex(12)
CURSOR_SECRET = "bench-cursor-" + secrets.token_hex(8)

SCENARIOS = ("health", "get", "list", "deep", "post", "put", "put_if_match", "mix", "batch")
IF_MATCH_ROWS = 2000  # rows 1..2000 (created_at order): put_if_match's products
PUT_ROWS = range(IF_MATCH_ROWS, IF_MATCH_ROWS + 20000)  # the products put and mix replace
DEEP_ROW = 90_000
SEARCH_SCENARIOS = ("list", "search")  # the search mode's: q, beside the first page without
SEARCH_QUERIES = 1000  # q values drawn from the seeded names, sent in random order
SEARCH_CHECKED = 50  # of them, answered by the service and by a scan, compared before the load


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- database


@contextmanager
def bench_database(name: str, rows: int) -> Iterator[str]:
    """A fresh database with `rows` products, dropped on the way out whatever happened."""
    if not re.fullmatch(r"cme_bench_[a-z0-9]+", name):
        raise ValueError("the database name must be cme_bench_<lowercase alphanumerics>")
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        log(f"database {name}: migrating and seeding {rows} products")
        env = {**base_env(), "DATABASE_URL": url}
        subprocess.run([str(SERVICE_BIN / "cme"), "migrate"], env=env, check=True, timeout=120)
        seed(url, rows)
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log(f"database {name} dropped")


def seed(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        # Since migration 0008 each name is stored folded beside it; a baseline tree's schema
        # may predate it. The seeded names are ASCII, whose folding is lower().
        folded = db.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'products' AND column_name = 'name_folded'"
        ).fetchone() == (1,)
        db.execute(
            f"""
            INSERT INTO products (id, sku, name, description, price_cents, quantity,
                                  created_at, updated_at, version{", name_folded" * folded})
            SELECT gen_random_uuid(), 'SEED-' || lpad(i::text, 7, '0'), {NAME_SQL},
                   CASE WHEN i %% 3 = 0 THEN NULL
                        ELSE 'A seeded product for the benchmark, number ' || i END,
                   (i::bigint * 7919) %% 1000000, i %% 1000,
                   timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second',
                   timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second', 1
                   {f", lower({NAME_SQL})" * folded}
            FROM (SELECT i, decode(md5(i::text), 'hex') AS h
                  FROM generate_series(1, %s) AS i) AS numbered
            """,
            (rows,),
        )
        # The seeded stock's ledger, as the migration writes it for existing products.
        db.execute(
            "INSERT INTO stock_ledger (id, product_id, delta, reason, reference, quantity_after,"
            " version_after, created_at) SELECT gen_random_uuid(), id, quantity, 'initial',"
            " NULL, quantity, 1, created_at FROM products WHERE quantity <> 0"
        )
        db.execute("VACUUM ANALYZE products")
        db.execute("VACUUM ANALYZE stock_ledger")
        ordered = db.execute("SELECT id, sku FROM products ORDER BY created_at, id").fetchall()
    (OUT / "ids.txt").write_text("".join(f"{i} {s}\n" for i, s in ordered))
    put = [ordered[i] for i in PUT_ROWS if i < len(ordered)]
    (OUT / "put-ids.txt").write_text("".join(f"{i} {s} 1\n" for i, s in put))
    (OUT / "search-queries.txt").write_text(encoded(sample_queries(url, rows, SEARCH_QUERIES)))


def write_if_match_ids(url: str) -> Path:
    """The put_if_match products with their current versions, read just before each run."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT id, sku, version FROM products ORDER BY created_at, id LIMIT %s",
            (IF_MATCH_ROWS,),
        ).fetchall()
    path = OUT / "if-match-ids.txt"
    path.write_text("".join(f"{i} {s} {v}\n" for i, s, v in rows))
    return path


# ---------------------------------------------------------------- servers


def base_env() -> dict[str, str]:
    """A clean environment: nothing from the caller's shell (say LOG_LEVEL) leaks in."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    if os.environ.get("PYTHONPATH"):  # lets a patched copy of src/ be measured
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if os.environ.get("DB_POOL_SIZE"):
        env["DB_POOL_SIZE"] = os.environ["DB_POOL_SIZE"]
    return env


# Rate limits on, as deployed, but too high for wrk's single client address to reach: the
# check runs on every request and never refuses one.
UNREACHABLE_LIMITS = {
    "RATE_LIMIT_READS": "1000000/1",
    "RATE_LIMIT_WRITES": "1000000/1",
    "RATE_LIMIT_BATCH": "1000000/1",
}


def service(
    url: str,
    workers: int,
    log_name: str = "service.log",
    telemetry: bool = True,
    name: str = "service",
    **extra_env: str,
) -> Server:
    port = free_port()
    env = {
        **base_env(),
        **UNREACHABLE_LIMITS,
        "REQUEST_TELEMETRY": "true" if telemetry else "false",
        "DATABASE_URL": url,
        "API_KEY": API_KEY,
        "CURSOR_SECRET": CURSOR_SECRET,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "SHUTDOWN_GRACE_SECONDS": "5",
        **extra_env,
    }
    argv = [str(SERVICE_BIN / "cme"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers)]
    return Server(name, argv, env, OUT / log_name, port)


def floor(url: str, workers: int) -> Server:
    port = free_port()
    env = {**base_env(), "DATABASE_URL": url, "CURSOR_SECRET": CURSOR_SECRET}
    argv = [sys.executable, str(BENCH / "floor.py"), "--port", str(port)]
    argv += ["--workers", str(workers)]
    return Server("floor", argv, env, OUT / "floor.log", port)


def fastapi_reference(url: str, workers: int) -> Server:
    """bench/fastapi_ref under the uvicorn command line, its default access log on (stdout)."""
    port = free_port()
    env = {**base_env(), "DATABASE_URL": url, "API_KEY": API_KEY, "CURSOR_SECRET": CURSOR_SECRET}
    env["FASTAPI_REF_MIDDLEWARE"] = fastapi_middleware()
    argv = [str(VENV_BIN / "uvicorn"), "fastapi_ref.main:app", "--app-dir", str(BENCH)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    argv += ["--http", "httptools", "--loop", "uvloop"]
    return Server("fastapi", argv, env, OUT / "fastapi.log", port)


def fastapi_middleware() -> str:
    """The reference's metrics middleware: a pure ASGI class, or with FASTAPI_REF_MIDDLEWARE=http
    the tutorial's @app.middleware("http") (see bench/fastapi_ref/metrics.py)."""
    return os.environ.get("FASTAPI_REF_MIDDLEWARE") or "asgi"


@contextmanager
def running(*servers: Server) -> Iterator[None]:
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready("/health", timeout=60)
        yield
    finally:
        for server in servers:
            server.stop()


def measure_startup(url: str, workers: int, runs: int) -> list[float]:
    """Seconds from spawning `cme serve` to the first 200 on /db-check, polled every 10 ms."""
    seconds = []
    for n in range(runs):
        server = service(url, workers, log_name="startup.log")
        try:
            started = server.start()
            seconds.append(server.wait_ready("/db-check", timeout=30, interval=0.01) - started)
        finally:
            server.stop()
        log(f"start-up {n + 1}/{runs}: {seconds[-1]:.3f} s to /db-check 200")
    return seconds


def deep_cursor(base: str) -> str:
    """Walk the catalogue once, 100 per page, to the cursor after the 90,000th product."""
    cursor = ""
    for _ in range(DEEP_ROW // 100):
        status, body = http_get(f"{base}/products?limit=100{cursor}")
        if status != 200:
            raise RuntimeError(f"walking the catalogue: {status}")
        cursor = "&cursor=" + json.loads(body)["next_cursor"]
    return cursor.removeprefix("&cursor=")


# ---------------------------------------------------------------- wrk


def wrk(server: Server, scenario: str, args: argparse.Namespace, seconds: float, tag: str) -> dict:
    base, worker_pids = server.base, server.workers()
    path = {"list": "/products?limit=20", "deep": f"/products?limit=20&cursor={args.cursor}"}
    url = base + path.get(scenario, "/health" if scenario == "health" else "/")
    env = {
        **os.environ,
        "BENCH_SCENARIO": scenario,
        "BENCH_IDS": str(OUT / "ids.txt"),
        "BENCH_PUT_IDS": str(OUT / "put-ids.txt"),
        "BENCH_QUERIES": str(OUT / "search-queries.txt"),
        "BENCH_PREFIX": f"W{tag}{secrets.token_hex(3)}",
        "BENCH_API_KEY": API_KEY,
        "BENCH_THREADS": str(args.threads),
    }
    time.sleep(1)  # let the previous run's last requests finish before the next one starts
    if scenario == "put_if_match":
        env["BENCH_PUT_IDS"] = str(write_if_match_ids(args.url))
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s"]
    argv += ["--timeout", "5s", "-s", str(LUA), url]
    meter = CpuMeter(worker_pids)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    cpu = meter.stop()
    (OUT / f"wrk-{tag}-{scenario}.txt").write_text(done.stdout + done.stderr)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed on {scenario}: {done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    result["errors"] = sum(result[k] for k in ("non2xx", "connect", "read", "write", "timeout"))
    result["cpu_s"] = {k: round(v, 3) for k, v in cpu.items()}
    result["server_cpu_us_per_request"] = round(cpu["server"] / max(result["requests"], 1) * 1e6, 1)
    # CPU that was neither ours, wrk's nor PostgreSQL's: other tenants of this machine.
    result["other_cpu_share"] = round(cpu["other"] / max(cpu["total"], 1e-9), 3)
    return result


def run_scenarios(
    servers: dict[str, Server], args: argparse.Namespace, turn: int = 0
) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for n, scenario in enumerate(args.scenarios, start=turn):
        names = list(servers)  # the order rotates, so no server always runs first or last
        order = names[n % len(names) :] + names[: n % len(names)]
        results[scenario] = {}
        for target in order:
            if args.warmup > 0:
                wrk(servers[target], scenario, args, args.warmup, f"warmup-{target}")
            result = wrk(servers[target], scenario, args, args.duration, target)
            results[scenario][target] = result
            log_result(scenario, target, result)
    return results


def run_together(servers: dict[str, Server], args: argparse.Namespace) -> dict[str, dict]:
    """Each scenario on every server at the same moment, a wrk each: whatever slows the
    machine slows them alike, and the scheduler shares the cores between their workers, so
    the one that spends less CPU per request serves more. Not the throughput of a server
    alone (each has about half the machine), but the ratio of two costs, measured at once."""
    if "put_if_match" in args.scenarios:  # its wrk rewrites one shared file of ids
        raise SystemExit("--together: put_if_match runs only alternating")
    results: dict[str, dict] = {}
    for scenario in args.scenarios:
        for seconds, prefix in ((args.warmup, "warmup-"), (args.duration, "")):
            if seconds <= 0:
                continue
            with ThreadPoolExecutor(len(servers)) as pool:
                running = {
                    name: pool.submit(wrk, server, scenario, args, seconds, prefix + name)
                    for name, server in servers.items()
                }
            results[scenario] = {name: future.result() for name, future in running.items()}
        for target, result in results[scenario].items():
            log_result(scenario, f"{target}+", result)
    return results


def log_result(scenario: str, target: str, result: dict) -> None:
    log(
        f"{scenario:13s} {target:8s} {result['rps']:9.1f} req/s  "
        f"p50 {result['p50_us'] / 1000:7.2f} ms  p99 {result['p99_us'] / 1000:7.2f} ms  "
        f"errors {result['errors']} {result['statuses']} "
        f"cpu {result['server_cpu_us_per_request']} us/req, "
        f"others' cpu {100 * result['other_cpu_share']:.0f} %"
    )


# ---------------------------------------------------------------- profile


def profile(server: Server, scenario: str, args: argparse.Namespace, tag: str) -> str:
    """py-spy on one worker under load: collapsed stacks summarised, and a flame graph SVG."""
    spy = VENV_BIN / "py-spy"
    pids = server.workers()
    seconds = args.profile_seconds
    load = threading.Thread(target=wrk, args=(server, scenario, args, seconds + 4, tag))
    load.start()
    time.sleep(2)
    raw, svg = OUT / f"profile-{tag}-{scenario}.txt", OUT / f"profile-{tag}-{scenario}.svg"
    common = ["--duration", str(seconds), "--rate", "250", "--full-filenames"]
    spies = [
        subprocess.Popen(
            [str(spy), "record", "--pid", str(pids[0]), "--format", "raw", "-o", str(raw), *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [str(spy), "record", "--pid", str(pids[-1]), "-o", str(svg), *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    for spied in spies:
        spied.wait(timeout=seconds + 60)
    load.join(timeout=seconds + 120)
    summary = summarise(raw, top=15)
    (OUT / f"profile-{tag}-{scenario}-summary.txt").write_text(summary)
    return summary


# ---------------------------------------------------------------- report


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    with psycopg.connect(ADMIN_URL) as db:
        pg = db.execute("SHOW server_version").fetchone()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    versions = {}
    packages = ("uvicorn", "starlette", "sqlalchemy", "psycopg", "psycopg-pool", "uvloop")
    packages += ("httptools", "fastapi", "pydantic", "prometheus-client")
    for package in packages:
        with suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True)
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(path.read_bytes())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": head.stdout.strip() + (" + uncommitted changes in src/" if dirty.stdout else ""),
        "src_sha256": digest.hexdigest()[:16],
        "loadavg_before": Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "postgresql": pg[0] if pg else "?",
        "wrk": wrk_version.split(" [", 1)[0].strip(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def count_lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file)


# ---------------------------------------------------------------- modes


def run(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {"machine": machine()}
    with bench_database(args.database, args.rows) as url:
        args.url = url
        report["startup_s"] = measure_startup(url, args.workers, args.startup_runs)
        servers = {
            "service": service(url, args.workers),
            "fastapi": fastapi_reference(url, args.workers),
            "floor": floor(url, args.workers),
        }
        ours = servers["service"]
        with running(*servers.values()):
            for name in ("service", "fastapi"):  # the floor has no /db-check
                servers[name].wait_ready("/db-check", timeout=30)
            args.cursor = deep_cursor(ours.base)
            sample = (OUT / "ids.txt").read_text().split(None, 1)[0]
            deep = f"/products?limit=20&cursor={args.cursor}"
            for other in (servers["fastapi"], servers["floor"]):
                checks.same_bytes(ours, other, [f"/products/{sample}", "/products", deep])
            # The reference also answers the service's problem+json where the contract is fixed.
            checks.same_bytes(ours, servers["fastapi"], [f"/products/{uuid.UUID(int=0)}"])
            checks.same_writes(ours, servers["fastapi"], API_KEY)
            log("the FastAPI reference and the floor answer the service's bytes; writes checked")
            _, body = http_get(ours.base + deep)
            first = json.loads(body)["items"][0]["sku"]
            if first != f"SEED-{DEEP_ROW + 1:07d}":
                raise RuntimeError(f"the deep page starts at {first}, not row {DEEP_ROW + 1}")
            log(f"deep page cursor checked: it starts at {first}")
            report["scenarios"] = run_scenarios(servers, args)
            report["rss_kib"] = {
                name: {str(p): rss_kib(p) for p in server.workers()}
                for name, server in servers.items()
            }
            report["profiles"] = {}
            if args.profile_seconds > 0:
                plan = [("service", s) for s in ("health", "get", "post")]
                plan += [("fastapi", "get"), ("floor", "get")]
                for name, scenario in plan:
                    log(f"profiling {name} on {scenario}")
                    report["profiles"][f"{name} {scenario}"] = profile(
                        servers[name], scenario, args, name
                    )
        report["access_log_lines"] = {
            name: count_lines(OUT / f"{name}.log") for name in ("service", "fastapi")
        }
    report["args"] = {k: v for k, v in vars(args).items() if k not in ("func", "url", "cursor")}
    report["args"]["pool"] = os.environ.get("DB_POOL_SIZE", "5")
    report["args"]["fastapi_middleware"] = fastapi_middleware()
    (OUT / "results.json").write_text(json.dumps(report, indent=2))
    text = render(report)
    (OUT / "report.md").write_text(text)
    print(text)
    missed = [name for name, ok, _ in verdicts(report) if not ok]
    log(f"{len(missed)} target(s) missed" + (": " + "; ".join(missed) if missed else ""))
    return 1 if (missed and args.strict) else 0


def telemetry(args: argparse.Namespace) -> int:
    """Throughput with metrics and the access log on, as a share of the same service without."""
    return compare_variants(
        args,
        "telemetry",
        "Telemetry overhead",
        "`cme serve` with REQUEST_TELEMETRY on (metrics and the INFO access log) and off. "
        "Target: on >= 0.85 of off.",
        {"REQUEST_TELEMETRY": "false"},
    )


def ratelimit(args: argparse.Namespace) -> int:
    """Throughput with the per-caller rate limits checked on every request, against none."""
    return compare_variants(
        args,
        "ratelimit",
        "Rate-limit overhead",
        "`cme serve` with per-worker rate limits checked on every request (set too high to "
        "refuse any) and with them off (RATE_LIMIT_READS=0, RATE_LIMIT_WRITES=0). "
        "Target: on >= 0.97 of off on get.",
        {"RATE_LIMIT_READS": "0", "RATE_LIMIT_WRITES": "0"},
    )


def tracing(args: argparse.Namespace) -> int:
    """Throughput with traces sampled (10 % unless --trace-ratio says otherwise) and exported
    over OTLP/HTTP, against none."""
    with span_sink() as endpoint:
        return compare_variants(
            args,
            "tracing",
            "Tracing overhead",
            "`cme serve` with OpenTelemetry traces on (OTEL_TRACES_EXPORTER=otlp, parent-based "
            f"sampling at {args.trace_ratio:.0%}, exported to an OTLP/HTTP sink on loopback) and "
            "as deployed by default (tracing off). Target at 10 %: on >= 0.95 of off.",
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(args.trace_ratio),
            },
            variant_is_on=True,
        )


def outbox(args: argparse.Namespace) -> int:
    """Write throughput with the change feed's outbox, against the code before it."""
    if not args.before_src or not (Path(args.before_src) / "cme_entrypoints").is_dir():
        raise SystemExit("outbox: --before-src must name the src/ of a checkout before the feed")
    return compare_variants(
        args,
        "outbox",
        "Change-feed outbox cost",
        "`cme serve` as it is (every write also inserts its change event in the same "
        "statement; each worker sends at most one NOTIFY per 50 ms after its commits) and "
        f"the code of {args.before_src}, on one database. "
        "Target: none set; the ratio is the outbox's cost.",
        {"PYTHONPATH": args.before_src},
    )


@contextmanager
def span_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint that takes every export and answers an empty success."""

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server calls
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def baseline(args: argparse.Namespace) -> int:
    """This tree's service against another tree's (--baseline-src), on one database."""
    if not args.baseline_src:
        raise SystemExit("baseline: give --baseline-src, the src/ directory of the baseline")
    return compare_variants(
        args,
        "baseline",
        "This change against a baseline",
        f"`cme serve` from this tree (on) and from {args.baseline_src} (off), on one database "
        "migrated by this tree.",
        {"PYTHONPATH": args.baseline_src},
    )


def batch(args: argparse.Namespace) -> int:
    """Products written per second: single POSTs against 1000-product batches, in one run."""
    size = int(os.environ.get("BENCH_BATCH", "1000"))
    # An importer sends a few batches at a time, not 64: at 64 in flight each waits seconds
    # for one of the pool's connections and some run out of time (503).
    batching = argparse.Namespace(**{**vars(args), "connections": args.batch_connections})
    with bench_database(args.database, args.rows) as url:
        args.url = batching.url = url
        server = service(url, args.workers)
        with running(server):
            single = run_scenarios({"service": server}, cast_scenarios(args, "post"))
            batched = run_scenarios({"service": server}, cast_scenarios(batching, "batch"))
    single, batched = single["post"]["service"], batched["batch"]["service"]
    connections = {"post": args.connections, "batch": args.batch_connections}
    per_product = {"post": 1, "batch": size}
    rows = [
        f"| {scenario} | {per_product[scenario]} | {connections[scenario]} | {r['rps']:.1f} | "
        f"{r['rps'] * per_product[scenario]:.0f} | {r['p50_us'] / 1000:.1f} | "
        f"{r['p99_us'] / 1000:.1f} | {r['server_cpu_us_per_request']:.0f} | {r['errors']} |"
        for scenario, r in (("post", single), ("batch", batched))
    ]
    ratio = batched["rps"] * size / max(single["rps"], 1e-9)
    text = "\n".join(
        [
            f"# Batch writes, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"Same run: `POST /products` one product a request, against `POST /products/batch` "
            f"of {size} new products (upsert); wrk -t{args.threads} -d{args.duration:g}s each, "
            "with the connections shown. Target: batches >= 10x the products per second.",
            "",
            "| scenario | products/request | connections | requests/s | products/s | p50 ms "
            "| p99 ms | server CPU us/request | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            *rows,
            "",
            f"Batches write {ratio:.1f}x the products per second of single POSTs.",
            "",
        ]
    )
    (OUT / "batch.md").write_text(text)
    print(text)
    return 0


def cast_scenarios(args: argparse.Namespace, *scenarios: str) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "scenarios": list(scenarios)})


def compare_variants(
    args: argparse.Namespace,
    name: str,
    title: str,
    what: str,
    variant_env: dict[str, str],
    variant_is_on: bool = False,
) -> int:
    """The service as deployed against the same service with variant_env, alternating, in one
    run; the table reads on/off, whichever of the two has the feature on."""
    rows: list[str] = []
    with bench_database(args.database, args.rows) as url:
        args.url = url
        deployed = service(url, args.workers)
        variant = service(url, args.workers, f"service-{name}.log", name="variant", **variant_env)
        with running(deployed, variant):
            rounds = []
            for n in range(args.rounds):
                log(f"round {n + 1} of {args.rounds}")
                # Each round turns the order again, so that a drift in the machine's speed
                # does not always favour the same server in a scenario.
                servers = {"service": deployed, "variant": variant}
                if args.together:
                    rounds.append(run_together(servers, args))
                else:
                    rounds.append(run_scenarios(servers, args, turn=n))
    on_name, off_name = ("variant", "service") if variant_is_on else ("service", "variant")
    for scenario in args.scenarios:
        pairs = [(results[scenario][on_name], results[scenario][off_name]) for results in rounds]
        ratios = [on["rps"] / max(off["rps"], 1e-9) for on, off in pairs]

        def median(key: str, side: int, pairs: list = pairs) -> float:
            return statistics.median(pair[side][key] for pair in pairs)

        cpu = "server_cpu_us_per_request"
        rows.append(
            f"| {scenario} | {median('rps', 0):.0f} | {median('rps', 1):.0f} | "
            f"{' '.join(f'{r:.3f}' for r in ratios)} | **{statistics.median(ratios):.3f}** | "
            f"{median(cpu, 0):.1f} / {median(cpu, 1):.1f} | "
            f"{sum(on['errors'] for on, _ in pairs)} / {sum(off['errors'] for _, off in pairs)} |"
        )
    text = "\n".join(
        [
            f"# {title}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"Same run, {'both at once' if args.together else 'alternating'}, "
            f"{args.rounds} round(s): {what}",
            "",
            "Requests/s and CPU are the medians of the rounds; on / off is each round's ratio, "
            "then their median.",
            "",
            "| scenario | on req/s | off req/s | on / off by round | median on / off "
            "| CPU us/req on / off | errors on / off |",
            "| --- | ---: | ---: | --- | ---: | ---: | --- |",
            *rows,
            "",
        ]
    )
    (OUT / f"{name}.md").write_text(text)
    print(text)
    return 0


def soak(args: argparse.Namespace) -> int:
    """Mixed load in chunks until --requests are served; worker RSS recorded after each chunk
    and reported at each --milestone (a million) requests, with the growth from the first."""
    with bench_database(args.database, args.rows) as url:
        args.url = url
        ours = service(url, args.workers)
        samples: list[dict[str, Any]] = []
        total, started = 0, time.monotonic()
        deadline = started + args.max_minutes * 60
        with running(ours):
            first_workers = ours.workers()
            chunks = 0
            while total < args.requests and time.monotonic() < deadline and chunks < 100_000:
                chunks += 1
                result = wrk(ours, args.soak_scenario, args, args.chunk_seconds, "soak")
                total += result["requests"]
                row = {
                    "elapsed_s": round(time.monotonic() - started, 1),
                    "requests": total,
                    "errors": result["errors"],
                    "rps": result["rps"],
                    "rss_kib": {str(p): rss_kib(p).get("VmRSS", 0) for p in ours.workers()},
                }
                samples.append(row)
                log(f"soak: {total} requests, {row['rps']:.0f} req/s, RSS KiB {row['rss_kib']}")
            replaced = ours.workers() != first_workers
    lines = ["elapsed_s,requests,errors,rps," + ",".join(f"rss_kib_{p}" for p in first_workers)]
    for row in samples:
        rss = [str(row["rss_kib"].get(str(p), "")) for p in first_workers]
        lines.append(f"{row['elapsed_s']},{row['requests']},{row['errors']},{row['rps']:.0f},")
        lines[-1] += ",".join(rss)
    (OUT / "soak.csv").write_text("\n".join(lines) + "\n")
    summary, met = summarise_soak(
        samples, first_workers, args.milestone, TARGETS["soak_growth_pct"], TARGETS["rss_mib"]
    )
    errors = sum(r["errors"] for r in samples)
    text = "\n".join(
        [
            f"soak: {total:,} requests of {args.soak_scenario} in {samples[-1]['elapsed_s']} s, "
            f"{errors} errors, workers replaced: {replaced}",
            *summary,
        ]
    )
    (OUT / "soak.txt").write_text(text + "\n")
    print(text + "\nwritten to bench/out/soak.txt and soak.csv")
    return 1 if (args.strict and not (met and errors == 0 and not replaced)) else 0


def search(args: argparse.Namespace) -> int:
    """`q` against the first page on one service, alternating, rounds of both in one run."""
    args.scenarios = list(SEARCH_SCENARIOS)
    with bench_database(args.database, args.rows) as url:
        args.url = url
        ours = service(url, args.workers)
        with running(ours):
            ours.wait_ready("/db-check", timeout=30)
            lines = (OUT / "search-queries.txt").read_text().splitlines()
            check_answers(ours.base, url, [unquote(line) for line in lines[:SEARCH_CHECKED]])
            log(f"the first {SEARCH_CHECKED} q values answered as a scan of the names answers")
            rounds = []
            for n in range(args.rounds):
                log(f"round {n + 1} of {args.rounds}")
                rounds.append(run_scenarios({"service": ours}, args))
    table = [{name: results[name]["service"] for name in SEARCH_SCENARIOS} for results in rounds]
    text, met = search_report(table, args, SEARCH_QUERIES)
    (OUT / "search.md").write_text(text)
    (OUT / "results-search.json").write_text(json.dumps({"rounds": table}, indent=2))
    print(text)
    return 1 if (args.strict and not met) else 0


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode",
        choices=(
            "run",
            "soak",
            "telemetry",
            "ratelimit",
            "tracing",
            "outbox",
            "search",
            "baseline",
            "batch",
        ),
        nargs="?",
        default="run",
    )
    parser.add_argument("--database", default=f"cme_bench_{secrets.token_hex(4)}")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    # batch is for the batch mode: the reference and the floor have no batch route.
    parser.add_argument("--scenarios", default=",".join(s for s in SCENARIOS if s != "batch"))
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--profile-seconds", type=int, default=10, help="0: no profile")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--requests", type=int, default=5_000_000, help="soak: requests to serve")
    parser.add_argument("--max-minutes", type=float, default=240, help="soak: time limit")
    parser.add_argument("--chunk-seconds", type=float, default=30, help="soak: wrk run length")
    parser.add_argument("--soak-scenario", default="mix", choices=SCENARIOS)
    parser.add_argument(
        "--together",
        action="store_true",
        help="the modes comparing two services: load both at once instead of alternating",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="search, and the modes comparing two services: rounds of every scenario on each",
    )
    parser.add_argument("--baseline-src", help="baseline: the src/ of the tree to compare with")
    parser.add_argument(
        "--trace-ratio", type=float, default=0.1, help="tracing: the share of requests sampled"
    )
    parser.add_argument(
        "--batch-connections", type=int, default=4, help="batch: wrk -c for the batches"
    )
    parser.add_argument(
        "--milestone", type=int, default=1_000_000, help="soak: RSS reported every N requests"
    )
    parser.add_argument("--before-src", default="", help="outbox: src/ of the code to compare")
    args = parser.parse_args()
    args.cursor, args.url = "", ""
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (bench/run.sh installs it)")
    OUT.mkdir(exist_ok=True)
    # Each run's logs are its own.
    for stale in ("service.log", "fastapi.log", "floor.log", "startup.log"):
        (OUT / stale).unlink(missing_ok=True)
    # SIGTERM (say, from a CI timeout) unwinds like Ctrl-C, so every finally block runs.
    signal.signal(signal.SIGTERM, _interrupt)
    modes = {
        "run": run,
        "soak": soak,
        "telemetry": telemetry,
        "ratelimit": ratelimit,
        "tracing": tracing,
        "outbox": outbox,
        "search": search,
        "baseline": baseline,
        "batch": batch,
    }
    return modes[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
