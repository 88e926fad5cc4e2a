"""A PostgreSQL outage, once known, is a 503 at once and two log lines, not one per attempt."""

import importlib.util
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx2 as httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


def _load_resilience() -> ModuleType:
    if "resilience" in sys.modules:
        return sys.modules["resilience"]
    spec = importlib.util.spec_from_file_location("resilience", ROOT / "scripts" / "resilience.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["resilience"] = module
    spec.loader.exec_module(module)
    return module


resilience = _load_resilience()


def warnings_in(log: Path, skip: int) -> list[str]:
    lines = log.read_text().splitlines()[skip:]
    found = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("severity") == "WARNING":
            found.append(f"{record.get('logger')}: {record.get('message')}")
    return found


@dataclass
class Outage:
    """What one outage of a throwaway cluster looked like from outside."""

    last_seconds: list[float]  # the last 20 requests' times while the database was down
    refusals: list[httpx.Response]
    during: list[str]  # WARNING lines while down
    after: list[str]  # WARNING lines once it was back
    metrics: str


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Outage:
    log = tmp_path_factory.mktemp("outage") / "cme.log"
    with (
        resilience.throwaway_cluster() as cluster,
        resilience.running_service(cluster.url, log, WORKERS) as service,
        httpx.Client(base_url=service.base, timeout=10) as http,
    ):
        product = {"sku": "OUTAGE-1", "name": "Lamp", "price": "1.00", "quantity": 1}
        created = http.post("/products", json=product, headers=resilience.WRITE_HEADERS)
        assert created.status_code == 201, created.text
        url = f"/products/{created.json()['id']}"
        time.sleep(1)  # both workers have served and settled
        skip = len(log.read_text().splitlines())

        cluster.stop("fast")
        stopped = time.monotonic()
        # Each worker finds out on its own; a few requests may still wait for the pool.
        answers = []
        while time.monotonic() - stopped < 6:
            started = time.monotonic()
            answer = http.get(url)
            answers.append((time.monotonic() - started, answer))
            time.sleep(0.02)
        during = warnings_in(log, skip)

        cluster.start()
        back = time.monotonic()
        while http.get(url).status_code != 200:
            assert time.monotonic() - back < 5, "not serving 5 s after the database came back"
            time.sleep(0.05)
        time.sleep(1)
        after = warnings_in(log, skip)[len(during) :]
        metrics = http.get("/metrics").text
    return Outage(
        [seconds for seconds, _ in answers[-20:]],
        [answer for _, answer in answers],
        during,
        after,
        metrics,
    )


def test_requests_while_the_database_is_known_to_be_down_are_refused_at_once(
    outage: Outage,
) -> None:
    assert all(a.status_code == 503 and a.headers.get("retry-after") for a in outage.refusals)
    last = outage.last_seconds
    assert statistics.median(last) < 0.1, f"median {statistics.median(last):.3f} s: {last}"
    assert max(last) < 0.5, last


def test_an_outage_is_one_warning_per_worker_when_it_starts_and_one_when_it_ends(
    outage: Outage,
) -> None:
    assert len(outage.during) == WORKERS, outage.during
    assert all("cme: database unreachable" in line for line in outage.during), outage.during
    assert len(outage.after) == WORKERS, outage.after
    assert all("cme: database reachable again after" in line for line in outage.after), outage.after
    failures = [
        line
        for line in outage.metrics.splitlines()
        if line.startswith("db_connection_failures_total")
    ]
    assert failures, "no db_connection_failures_total in /metrics"
    assert float(failures[0].split()[-1]) > 0, failures
