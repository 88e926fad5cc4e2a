"""Faults under steady writes: a database outage and a killed worker lose nothing acknowledged.

The machinery is scripts/resilience.py (also runnable by hand); these tests run it on a
throwaway PostgreSQL cluster of their own (initdb in a temporary directory, a free port), never
on the shared server, and print what they injected and counted into the CI log and into
bench/out/faults-summary.txt.
"""

import asyncio
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "bench" / "out" / "faults-summary.txt"


def _load_resilience() -> ModuleType:
    spec = importlib.util.spec_from_file_location("resilience", ROOT / "scripts" / "resilience.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["resilience"] = module
    spec.loader.exec_module(module)
    return module


resilience = _load_resilience()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """One throwaway cluster and one `cme serve --workers 2` on it, for both faults."""
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text("")
    log = tmp_path_factory.mktemp("faults") / "cme.log"
    with (
        resilience.throwaway_cluster() as cluster,
        resilience.running_service(cluster.url, log, 2) as service,
    ):
        yield cluster, service


def _report(report: Any, capsys: pytest.CaptureFixture[str]) -> str:
    text = "\n".join(report.lines) + "\n"
    with SUMMARY.open("a") as summary:
        summary.write(text)
    with capsys.disabled():
        print("\n" + text, end="")
    return text


def test_a_database_outage_gives_fast_503s_loses_no_acknowledged_create_and_heals_itself(
    target: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, service = target
    report = resilience.Report()
    asyncio.run(resilience.outage(service, cluster, resilience.Config(), report))
    text = _report(report, capsys)
    assert not report.failures, text


def test_a_killed_worker_is_replaced_and_no_acknowledged_create_is_lost(
    target: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, service = target
    report = resilience.Report()
    asyncio.run(resilience.killed_worker(service, cluster, resilience.Config(), report))
    text = _report(report, capsys)
    assert not report.failures, text
