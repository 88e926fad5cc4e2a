"""What one hostile batch costs a worker: a 4 MiB body of unknown keys against `cme serve`.

    .venv/bin/python -m bench.hostile_batch [--keys 426401]

Starts `cme serve` (one worker, SQLite in a temporary folder), sends --times `POST
/products/batch` in a row whose single product carries --keys unknown fields, and prints for
each the answer's status and size, how long it took, how long a `/health` sent 0.3 s into it
waited, and the worker's resident memory after it and at its peak. To compare two checkouts in
the same minute, run it twice with PYTHONPATH naming each one's src.
"""

import argparse
import itertools
import os
import string
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from tests.integration.server import CME, running_cme

API_KEY = "bench-key-0123456789abcdef"


def resident_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def hostile_body(keys: int) -> bytes:
    # Four-character keys, so that 426,401 of them fit under the route's 4 MiB.
    alphabet = string.ascii_letters + string.digits
    names = ("".join(chars) for chars in itertools.product(alphabet, repeat=4))
    product = dict(zip(names, itertools.repeat(0, keys), strict=False))
    return orjson.dumps({"mode": "upsert", "products": [product]})


def health_wait(base_url: str, out: list[float]) -> None:
    start = time.perf_counter()
    with urllib.request.urlopen(f"{base_url}/health", timeout=30):
        out.append(time.perf_counter() - start)


def send(base_url: str, body: bytes) -> tuple[int, bytes, float, float]:
    """(status, answer, seconds, how long a /health sent 0.3 s in waited)."""
    request = urllib.request.Request(
        f"{base_url}/products/batch",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
    )
    waits: list[float] = []
    probe = threading.Timer(0.3, health_wait, (base_url, waits))
    start = time.perf_counter()
    probe.start()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, answer = error.code, error.read()
    took = time.perf_counter() - start
    probe.join()
    return status, answer, took, waits[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=426_401)
    parser.add_argument("--times", type=int, default=3, help="batches sent one after another")
    args = parser.parse_args()
    body = hostile_body(args.keys)
    print(f"body {len(body) / 2**20:.2f} MiB with {args.keys} unknown keys")
    with tempfile.TemporaryDirectory() as folder:
        env = {"DATABASE_URL": f"sqlite:///{folder}/cme.db", "API_KEY": API_KEY}
        subprocess.run([CME, "migrate"], env={**os.environ, **env}, check=True, capture_output=True)
        with running_cme(env, Path(folder), Path(folder) / "cme.log") as (base_url, process):
            print(f"worker RSS {resident_mib(process.pid, 'VmRSS'):.0f} MiB before")
            for n in range(1, args.times + 1):
                status, answer, took, health = send(base_url, body)
                print(
                    f"{n}: answer {status}, {len(answer) / 2**20:.3f} MiB in {took:.2f} s;"
                    f" /health waited {health:.2f} s; worker RSS"
                    f" {resident_mib(process.pid, 'VmRSS'):.0f} MiB,"
                    f" peak {resident_mib(process.pid, 'VmHWM'):.0f} MiB"
                )


if __name__ == "__main__":
    main()
