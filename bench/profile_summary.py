"""Summarise py-spy's collapsed stacks (`--format raw --full-filenames`): where the time goes.

    python bench/profile_summary.py bench/out/profile-get.txt [--top 20]

Prints, as percentages of all samples taken while the worker was on the CPU: the share of each
area (our code, starlette, SQLAlchemy, psycopg, logging, metrics, uvicorn, FastAPI, ...) by
self time, the functions with the most self time, and the frames with the most inclusive time.
"""

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# First match wins: the path fragment that names the area a frame's file belongs to.
AREAS = (
    ("/cme_entrypoints/", "cme: entrypoints (HTTP layer)"),
    ("/cme_adapters/", "cme: adapters (SQL, metrics)"),
    ("/cme_domain/", "cme: domain"),
    ("/bench/floor.py", "floor"),
    ("/bench/fastapi_ref/", "FastAPI reference: its own code"),
    ("/fastapi/", "fastapi"),
    ("/pydantic", "pydantic"),
    ("/psycopg_pool/", "psycopg_pool"),
    ("/sqlalchemy/", "sqlalchemy"),
    ("/psycopg", "psycopg"),
    ("/starlette/", "starlette"),
    ("/uvicorn/", "uvicorn"),
    ("/opentelemetry/", "opentelemetry (metrics)"),
    ("/prometheus_client/", "prometheus_client"),
    ("/logging/", "logging (stdlib)"),
    ("/asyncio/", "asyncio (stdlib)"),
    ("/uvloop/", "uvloop"),
    ("/attr/", "attrs"),
    ("/attrs/", "attrs"),
    ("/dependency_injector/", "dependency_injector"),
    ("/json/", "json (stdlib)"),
    ("/decimal", "decimal"),
    ("/uuid.py", "uuid (stdlib)"),
    ("/typing.py", "typing (stdlib)"),
    ("/python3.11/", "other stdlib"),
)


def area(file: str) -> str:
    return next((name for fragment, name in AREAS if fragment in file), "other")


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/bench/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match['func']} ({file}:{match['line'] or '?'})"


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


# Inclusive shares worth naming: what a request's time is spent on, layer by layer.
KEY_FRAMES = (
    ("uvicorn: writing responses to the socket", "RequestResponseCycle.send (", "uvicorn/"),
    ("uvicorn: parsing requests", "HttpToolsProtocol.data_received", "uvicorn/"),
    ("cme: security middleware and guard (inclusive)", "RequestGuard.__call__", "cme_"),
    ("cme: observability middleware (inclusive)", "ObservabilityMiddleware.__call__", "cme_"),
    ("cme: access log record (logging)", "Logger.info", "logging/"),
    ("cme: metrics request_finished (OpenTelemetry)", "request_finished", "cme_adapters"),
    ("cme: request id (uuid4)", "_request_id", "cme_"),
    ("starlette: routing and exception layers (inclusive)", "Router.__call__", "starlette/"),
    ("cme: route handler (inclusive)", "by_method.<locals>.dispatch", "cme_"),
    ("cme: unit of work enter (pool checkout, BEGIN)", "SqlUnitOfWork.__aenter__", "cme_"),
    ("cme: unit of work exit (ROLLBACK/close)", "SqlUnitOfWork.__aexit__", "cme_"),
    ("cme: commit", "SqlUnitOfWork.commit", "cme_"),
    ("sqlalchemy: AsyncConnection.execute (inclusive)", "AsyncConnection.execute (", "sqlalchemy/"),
    ("psycopg: BEGIN/COMMIT/ROLLBACK round trips", "BaseConnection._exec_command", "psycopg/"),
    ("psycopg: statement execute (inclusive)", "AsyncCursor.execute (", "psycopg/"),
    ("cme: request body read and JSON parse", "read_json_object", "cme_"),
    ("cme: ProductSpec.parse (validation)", "ProductSpec.parse", "cme_"),
    ("cme: product rendering (JSON, ETag)", "product_response", "cme_"),
    ("floor: pool fetch (inclusive)", "Pool.fetch", "floor.py"),
    ("FastAPI: metrics middleware, ASGI (inclusive)", "PrometheusMiddleware.__call__", "bench/"),
    ("FastAPI: metrics middleware, http (inclusive)", "BaseHTTPMiddleware.__call__", "starlette/"),
    ("FastAPI: request handling (inclusive)", "get_request_handler.<locals>.app", "fastapi/"),
    ("FastAPI: dependencies (inclusive)", "solve_dependencies", "fastapi/"),
    ("FastAPI: response serialization (inclusive)", "serialize_response", "fastapi/"),
    ("FastAPI: pool connection (psycopg_pool)", "AsyncConnectionPool.connection", "psycopg_pool/"),
)


def summarise(path: Path, top: int = 20, root: str = "Server.run (") -> str:
    """Percentages of the samples whose stack passes through `root` (the event loop's thread:
    in blocking mode py-spy also samples uvicorn's health-check thread waiting on its pipe)."""
    stacks = [(f, c) for f, c in load(path) if any(root in frame for frame in f)] or load(path)
    total = sum(count for _, count in stacks) or 1
    by_area: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        frames = [f for f in frames if FRAME.match(f)]  # drop the process/thread label
        if not frames:
            continue
        leaf = frames[-1]
        match = FRAME.match(leaf)
        by_area[area(match["file"] if match else leaf)] += count
        self_time[short(leaf)] += count
        for frame in {short(f) for f in frames}:
            inclusive[frame] += count
    lines = [f"{path.name}: {total} samples of the event-loop thread", "", "self time by area:"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in by_area.most_common()]
    lines += ["", "inclusive time of key frames:"]
    for label, fragment, where in KEY_FRAMES:
        n = sum(c for f, c in stacks if any(fragment in x and where in x for x in f))
        if n:
            lines.append(f"  {100 * n / total:5.1f} %  {label}")
    lines += ["", f"top {top} functions by self time:"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in self_time.most_common(top)]
    lines += ["", f"top {2 * top} frames by inclusive time:"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(2 * top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    print(summarise(args.raw, args.top), end="")


if __name__ == "__main__":
    main()
