"""Concurrent batches on one SQLite file: never answered as an outage of the database."""

import asyncio
import subprocess
from collections import Counter
from pathlib import Path

import httpx2 as httpx

from tests.integration.server import CME, running_cme
from tests.integration.test_batch_deadlocks import API_KEY, AUTH, PRODUCTS


def test_batches_that_wait_out_the_write_lock_are_never_an_outage_503(tmp_path: Path) -> None:
    """Two workers, 24 upserts of the same 200 skus at once, three times. A batch that waited
    out another worker's write lock is contention (retried by the batch itself, else 409); one
    that queued past the wait for a connection is 503 database-busy. Both say retry after 1 s;
    none says "the database is not reachable"."""
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cme.db'}",
        "API_KEY": API_KEY,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_WRITES": "0",
        "RATE_LIMIT_BATCH": "0",
    }
    subprocess.run([CME, "migrate"], env={**env, "PATH": "/usr/bin:/bin"}, check=True)

    async def rounds(base_url: str) -> tuple[Counter[int], list[httpx.Response]]:
        statuses: Counter[int] = Counter()
        refused: list[httpx.Response] = []
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
            for _ in range(3):
                bodies = [
                    {"mode": "upsert", "products": PRODUCTS if n % 2 else PRODUCTS[::-1]}
                    for n in range(24)
                ]
                answers = await asyncio.gather(
                    *(http.post("/products/batch", json=b, headers=AUTH) for b in bodies)
                )
                statuses.update(a.status_code for a in answers)
                refused += [a for a in answers if a.status_code != 200]
        return statuses, refused

    with running_cme(env, tmp_path, tmp_path / "cme.log", "--workers", "2") as (base_url, _):
        statuses, refused = asyncio.run(rounds(base_url))
    kinds = Counter(r.json()["type"].rsplit(":", 1)[1] for r in refused)
    assert set(kinds) <= {"contention", "database-busy"}, (statuses, kinds)
    assert statuses[200] >= 24, statuses
    assert all(answer.headers["retry-after"] == "1" for answer in refused)
