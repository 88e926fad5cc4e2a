"""A reservation and its confirm, against one stock adjustment, in the same run.

    PYTHONPATH=src .venv/bin/python bench/reservations.py [--seconds 5] [--rounds 5]

On a fresh PostgreSQL database, `cme serve` with two workers; --clients threads, each on
its own keep-alive connection, take turns in alternating rounds of --seconds:
  adjust   POST /products/{id}/stock-adjustments {"delta": -1}          one request
  reserve  POST /reservations (one line of 1), then POST .../confirm      two requests
each on a product drawn from --products, so that the rows are shared as a shop's are. The
unit is the sale: one adjustment, or one hold and its confirm. Printed per round and as the
median over rounds: sales per second, latency of a sale p50/p99 (ms), and the ratio of
reserve+confirm to adjust.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from procs import free_port, http_get
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
CME = Path(os.environ.get("BENCH_SERVICE_VENV", BENCH.parent / ".venv")) / "bin" / "cme"
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
API_KEY = "bench-reservations-0123456789abcdef"
HEADERS = {"Content-Type": "application/json", "X-API-Key": API_KEY}


def serve(url: str, workers: int, **settings: str) -> tuple[subprocess.Popen[bytes], int]:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(BENCH.parent / "src"),
        "DATABASE_URL": url,
        "API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_READS": "0",
        "RATE_LIMIT_WRITES": "0",
        **settings,
    }
    subprocess.run([str(CME), "migrate"], env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [str(CME), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if http_get(f"http://127.0.0.1:{port}/health", timeout=1)[0] == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the server did not start")


class Client:
    def __init__(self, port: int) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: object) -> tuple[int, object]:
        self.http.request("POST", path, json.dumps(body).encode(), HEADERS)
        response = self.http.getresponse()
        return response.status, json.loads(response.read() or b"null")


def expect(wanted: int, status: int, answer: object) -> dict[str, object]:
    """The answer, when the status is the one wanted; the run stops on anything else."""
    if status != wanted:
        raise RuntimeError(f"{status} instead of {wanted}: {answer}")
    return answer if isinstance(answer, dict) else {}


def adjust(client: Client, product_id: str) -> None:
    sale = {"delta": -1, "reason": "sale"}
    expect(201, *client.post(f"/products/{product_id}/stock-adjustments", sale))


def reserve(client: Client, product_id: str) -> None:
    cart = {"lines": [{"product_id": product_id, "quantity": 1}]}
    held = expect(201, *client.post("/reservations", cart))
    expect(200, *client.post(f"/reservations/{held['id']}/confirm", None))


def run_round(
    port: int, products: list[str], sale: Callable[[Client, str], None], args: argparse.Namespace
) -> tuple[float, float, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def work(seed: int) -> None:
        pick = random.Random(seed)
        client = Client(port)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            sale(client, pick.choice(products))
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    per_second = len(latencies) / args.seconds
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return per_second, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    name = f"cme_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    process = None
    try:
        process, port = serve(url, args.workers)
        seeder = Client(port)
        products = []
        for i in range(args.products):
            body = {"sku": f"B{i}", "name": "Lamp", "price": "1.00", "quantity": 10**9}
            products.append(str(expect(201, *seeder.post("/products", body))["id"]))
        sales = {"adjust": adjust, "reserve": reserve}
        results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in sales}
        run_round(port, products, adjust, argparse.Namespace(**{**vars(args), "seconds": 2}))
        for number in range(args.rounds):
            for kind in sales if number % 2 == 0 else reversed(list(sales)):
                result = run_round(port, products, sales[kind], args)
                results[kind].append(result)
                print(
                    f"round {number + 1} {kind:>8}: {result[0]:7.0f}/s "
                    f"p50 {result[1]:6.2f} ms p99 {result[2]:6.2f} ms",
                    flush=True,
                )
        median = {
            k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in results.items()
        }
        for kind, (rate, p50, p99) in median.items():
            print(f"median {kind:>8}: {rate:7.0f} sales/s p50 {p50:6.2f} ms p99 {p99:6.2f} ms")
        a, r = median["adjust"], median["reserve"]
        print(
            f"reserve+confirm / adjust: throughput {r[0] / a[0]:.2f}x, "
            f"p50 {r[1] / a[1]:.2f}x, p99 {r[2] / a[2]:.2f}x"
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
