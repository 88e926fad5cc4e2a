"""What idle long polls cost a SQLite worker: its CPU, and the latency of everything else.

    PYTHONPATH=src .venv/bin/python bench/idle_waits.py [--waiters 250] [--tree NAME=PATH ...]

For each tree (a checkout; default: this one), in turn and on a fresh SQLite file: one worker
of `cme serve`, one product, then the worker's CPU over --seconds and the median of --gets
`GET /products/{id}`, first with no waiter and then with --waiters idle
`GET /products/changes?wait=30` open. Giving the code before and after a change as two trees
measures both in one run, on the same machine and minute.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procs import cpu_seconds, free_port, http_get, http_request, workers

API_KEY = "bench-idle-waits-0123456789abcdef"
CME = str(Path(sys.executable).with_name("cme"))


def serve(
    tree: Path, database: Path, waiters: int, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{tree / 'src'}:{tree}",
        "DATABASE_URL": f"sqlite:///{database}",
        "API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        "REQUEST_TELEMETRY": "false",
        "FEED_WAITS_PER_WORKER": str(waiters + 10),
        "FEED_WAITS_PER_CALLER": str(waiters + 10),
        "RATE_LIMIT_READS": "0",
        "RATE_LIMIT_WRITES": "0",
    }
    subprocess.run([CME, "migrate"], env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [CME, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if http_get(f"{base}/health", timeout=1)[0] == 200:
                return process, base
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{tree}: the server did not start")


async def hold_waits(port: int, cursor: str, count: int) -> list[asyncio.StreamWriter]:
    request = f"GET /products/changes?cursor={cursor}&wait=30 HTTP/1.1\r\nHost: b\r\n\r\n"
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request.encode())
        writers.append(writer)
    await asyncio.gather(*(w.drain() for w in writers))
    return writers


def median_get_ms(url: str, gets: int) -> float:
    times = []
    for _ in range(gets):
        started = time.perf_counter()
        status, _ = http_get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
    return statistics.median(times)


def worker_cpu(pid: int, seconds: float) -> float:
    start = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - start) / seconds


async def measure(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        process, base = serve(tree, Path(scratch) / "cme.db", args.waiters)
        try:
            pid = (workers(process.pid) or [process.pid])[0]
            body = json.dumps({"sku": "IDLE-1", "name": "Lamp", "price": "1.00", "quantity": 1})
            status, _, created = http_request(
                "POST",
                f"{base}/products",
                body.encode(),
                {"Content-Type": "application/json", "X-API-Key": API_KEY},
            )
            assert status == 201, status
            url = f"{base}/products/{json.loads(created)['id']}"
            result = {
                "cpu_idle": worker_cpu(pid, args.seconds),
                "get_ms_idle": median_get_ms(url, args.gets),
            }
            # The measurement ends well within the waits' 30 s.
            # Waits from the feed's end: no event is there for them.
            cursor = json.loads(http_get(f"{base}/products/changes")[1])["next_cursor"]
            writers = await hold_waits(int(base.rsplit(":", 1)[1]), cursor, args.waiters)
            await asyncio.sleep(1)
            loop = asyncio.get_running_loop()
            result["cpu_waiting"] = await loop.run_in_executor(None, worker_cpu, pid, args.seconds)
            result["get_ms_waiting"] = await loop.run_in_executor(
                None, median_get_ms, url, args.gets
            )
            for writer in writers:
                writer.close()
            return result
        finally:
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--waiters", type=int, default=250)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--gets", type=int, default=300)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout")
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in args.tree] or [["this", "."]]
    print(f"{args.waiters} waiters; worker CPU (share of a core), median GET /products/{{id}} ms")
    for name, path in trees:
        figures = asyncio.run(measure(Path(path).resolve(), args))
        print(
            f"{name:>8}: no waiter {figures['cpu_idle']:.2f} core, {figures['get_ms_idle']:.1f} ms"
            f" | {args.waiters} waiting {figures['cpu_waiting']:.2f} core,"
            f" {figures['get_ms_waiting']:.1f} ms"
        )


if __name__ == "__main__":
    main()
