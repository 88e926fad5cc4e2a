"""How many feed reads a SQLite service refuses while it writes: the statuses of each.

    PYTHONPATH=src .venv/bin/python bench/feed_reads_under_writes.py [--tree NAME=PATH ...]

For each tree (a checkout; default: this one), on a fresh SQLite file: `cme serve` with two
workers, --writers threads creating products and --readers threads reading
`GET /products/changes` for --seconds, then the count of each status of each kind.
"""

import argparse
import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from idle_waits import API_KEY, serve
from procs import http_request


def load(base: str, args: argparse.Namespace) -> tuple[Counter[int], Counter[int], dict[str, str]]:
    writes: Counter[int] = Counter()
    reads: Counter[int] = Counter()
    refusals: dict[str, str] = {}  # the first 503's detail, for each kind
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}

    def write() -> None:
        while time.monotonic() < deadline:
            body = {"sku": uuid.uuid4().hex[:20], "name": "Lamp", "price": "1.00", "quantity": 3}
            status, _, answer = http_request(
                "POST", f"{base}/products", json.dumps(body).encode(), headers
            )
            with lock:
                writes[status] += 1
                if status == 503:
                    refusals.setdefault("POST", json.loads(answer).get("detail", ""))

    def read() -> None:
        while time.monotonic() < deadline:
            status, _, answer = http_request("GET", f"{base}/products/changes?limit=100")
            with lock:
                reads[status] += 1
                if status == 503:
                    refusals.setdefault("GET", json.loads(answer).get("detail", ""))

    threads = [threading.Thread(target=write) for _ in range(args.writers)]
    threads += [threading.Thread(target=read) for _ in range(args.readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return writes, reads, refusals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout")
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in args.tree] or [["this", "."]]
    for name, path in trees:
        with tempfile.TemporaryDirectory() as scratch:
            process, base = serve(Path(path).resolve(), Path(scratch) / "cme.db", 0, workers=2)
            try:
                writes, reads, refusals = load(base, args)
            finally:
                process.terminate()
                process.wait(timeout=30)
        print(f"{name:>8}: feed GETs {dict(sorted(reads.items()))}", end="")
        print(f", POSTs {dict(sorted(writes.items()))}; 503s said {refusals or 'nothing'}")


if __name__ == "__main__":
    main()
