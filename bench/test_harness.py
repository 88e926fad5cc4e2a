"""The benchmark's own checks and verdicts fail when they should (no database, no load)."""

import argparse
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import checks
import pytest
from procs import Server
from report import render, verdicts
from search_report import search_report
from soak_summary import milestones, summarise

PRODUCT = {
    "id": "01a235a9-3092-7312-b069-de61da3194b2",
    "sku": "SKU-1",
    "name": "Checked",
    "description": None,
    "price": "19.90",
    "quantity": 4,
    "created_at": "2026-12-02T07:30:10.194134Z",
    "updated_at": "2026-12-02T07:30:10.194134Z",
    "version": 1,
}


def cell(rps: float, p99_us: int = 10_000, errors: int = 0) -> dict[str, Any]:
    return {
        "rps": rps,
        "p99_us": p99_us,
        "errors": errors,
        "server_cpu_us_per_request": 300.0,
        "other_cpu_share": 0.0,
    }


def a_report(service: dict[str, Any], scenario: str = "get", rss_kib: int = 60_000) -> dict:
    return {
        "scenarios": {scenario: {"service": service, "fastapi": cell(1000), "floor": cell(1500)}},
        "rss_kib": {"service": {"1": {"VmRSS": rss_kib, "VmHWM": rss_kib}}},
        "startup_s": [0.5],
    }


def verdict(report: dict[str, Any], starts: str) -> bool:
    return next(ok for name, ok, _ in verdicts(report) if name.startswith(starts))


def test_a_service_under_1_25x_fastapi_on_a_database_scenario_misses_the_target() -> None:
    assert verdict(a_report(cell(1240)), "get: req/s >= 1.25x FastAPI") is False
    assert verdict(a_report(cell(1260)), "get: req/s >= 1.25x FastAPI") is True


def test_reads_need_0_65_of_the_floor_writes_0_60_and_health_0_50() -> None:
    assert verdict(a_report(cell(960)), "get: req/s >= 0.65 of the floor") is False
    assert verdict(a_report(cell(960), "post"), "post: req/s >= 0.6 of the floor") is True
    assert verdict(a_report(cell(880), "post"), "post: req/s >= 0.6 of the floor") is False
    assert verdict(a_report(cell(760), "health"), "health: req/s >= 0.5 of the floor") is True


def test_health_is_not_held_to_the_fastapi_ratio() -> None:
    names = [name for name, _, _ in verdicts(a_report(cell(10), "health"))]
    assert not any("FastAPI" in name and name.startswith("health: req/s") for name in names)


def test_a_p99_over_1_5x_the_floors_or_any_error_misses_its_target() -> None:
    assert verdict(a_report(cell(1300, p99_us=15_100)), "get: p99") is False
    assert verdict(a_report(cell(1300, p99_us=14_900)), "get: p99") is True
    assert verdict(a_report(cell(1300, errors=1)), "get: zero errors") is False


def test_an_erring_reference_is_flagged_because_the_comparison_means_nothing() -> None:
    report = a_report(cell(1300))
    report["scenarios"]["get"]["fastapi"]["errors"] = 3
    assert verdict(report, "get: FastAPI and floor error-free") is False


def test_80_mib_of_rss_per_worker_after_the_run_misses_the_target() -> None:
    assert verdict(a_report(cell(1300), rss_kib=80 * 1024), "RSS per worker") is False
    assert verdict(a_report(cell(1300), rss_kib=79 * 1024), "RSS per worker") is True


def test_the_report_table_names_all_three_servers_and_both_ratios() -> None:
    report = a_report(cell(1300))
    report["machine"] = dict.fromkeys(
        ("date", "nproc", "cpu", "postgresql", "python", "kernel", "wrk", "versions"), "x"
    ) | {"commit": "c", "src_sha256": "s", "loadavg_before": "0"}
    report["args"] = {"threads": 2, "connections": 64, "duration": 10, "warmup": 3}
    report["args"] |= {"rows": 100_000, "pool": "5", "fastapi_middleware": "asgi"}
    report["access_log_lines"] = {"service": 1, "fastapi": 1}
    text = render(report)
    assert "| get | 1300 | 1000 | 1500 | 1.30 | 0.87 |" in text


def soak_sample(requests: int, *rss_kib: int) -> dict[str, Any]:
    return {"requests": requests, "rss_kib": {str(n): v for n, v in enumerate(rss_kib, 1)}}


def test_milestones_are_the_first_samples_past_each_million() -> None:
    samples = [soak_sample(n, 1) for n in (400_000, 1_100_000, 1_900_000, 2_000_000, 3_500_000)]
    found = [(k, s["requests"]) for k, s in milestones(samples, 1_000_000)]
    assert found == [(1, 1_100_000), (2, 2_000_000), (3, 3_500_000)]


def five_millions(fifth_rss: int) -> list[dict[str, Any]]:
    return [soak_sample(n * 1_000_000, 50_000, 50_000) for n in range(1, 5)] + [
        soak_sample(5_000_000, 50_000, fifth_rss)
    ]


def test_six_percent_growth_from_the_first_to_the_fifth_million_fails_the_soak() -> None:
    _, met = summarise(five_millions(53_000), [1, 2], 1_000_000, 5.0, 80)
    assert met is False


def test_two_percent_growth_from_the_first_to_the_fifth_million_passes_the_soak() -> None:
    lines, met = summarise(five_millions(51_000), [1, 2], 1_000_000, 5.0, 80)
    assert met is True
    assert lines[4].startswith("  5,000,000 (sampled at 5,000,000)")
    assert lines[-1].startswith("  growth from 1,000,000 to 5,000,000 requests")


def test_a_worker_missing_from_a_sample_fails_the_soak() -> None:
    samples = five_millions(50_000)
    del samples[-1]["rss_kib"]["2"]  # replaced after a crash: its pid is gone
    assert summarise(samples, [1, 2], 1_000_000, 5.0, 80)[1] is False


class Canned(BaseHTTPRequestHandler):
    """Answers every request with the next of its class's canned (status, body) pairs."""

    replies: ClassVar[list[tuple[int, dict[str, Any]]]] = []

    def _reply(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        status, body = self.replies.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("ETag", f'"v{body.get("version", 0)}"')
        self.send_header("Location", f"/products/{body.get('id')}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _reply

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def canned(name: str, replies: list[tuple[int, dict[str, Any]]]) -> Iterator[Server]:
    handler = type(name, (Canned,), {"replies": list(replies)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(name, [], {}, Path("/dev/null"), httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def write_replies(sku: str, **changes: Any) -> list[tuple[int, dict[str, Any]]]:
    v1 = PRODUCT | {"sku": sku} | changes
    v2 = v1 | {"version": 2, "quantity": 5}
    stale = {"type": "urn:cme:problem:version-mismatch", "title": "Precondition Failed"}
    stale |= {"status": 412, "detail": "stale", "instance": f"/products/{PRODUCT['id']}"}
    return [(201, v1), (200, v2), (412, stale), (200, v2)]


def test_identical_writes_pass_the_write_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks.secrets, "token_hex", lambda _n: "fixed")
    with (
        canned("service", write_replies("CHECK-service-fixed")) as ours,
        canned("fastapi", write_replies("CHECK-fastapi-fixed")) as theirs,
    ):
        checks.same_writes(ours, theirs, "key")


@pytest.mark.parametrize(
    "change",
    [
        {"price": "19.9"},  # not two decimals
        {"created_at": "2026-12-02T07:30:10.194134+00:00"},  # not the "Z" form
        {"description": ""},  # a different value
    ],
)
def test_a_reference_that_writes_other_json_fails_the_write_check(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]
) -> None:
    monkeypatch.setattr(checks.secrets, "token_hex", lambda _n: "fixed")
    with (
        canned("service", write_replies("CHECK-service-fixed")) as ours,
        canned("fastapi", write_replies("CHECK-fastapi-fixed", **change)) as theirs,
        pytest.raises(RuntimeError, match="writes differ"),
    ):
        checks.same_writes(ours, theirs, "key")


def test_a_reference_whose_body_differs_by_one_byte_fails_the_read_check() -> None:
    with (
        canned("service", [(200, PRODUCT)]) as ours,
        canned("fastapi", [(200, PRODUCT | {"quantity": 5})]) as theirs,
        pytest.raises(RuntimeError, match="service and fastapi differ"),
    ):
        checks.same_bytes(ours, theirs, ["/products/x"])


def search_round(list_p50_ms: float, search_p50_ms: float, errors: int = 0) -> dict[str, Any]:
    def timed(p50_ms: float, errors: int) -> dict[str, Any]:
        return {**cell(1000, errors=errors), "p50_us": p50_ms * 1000, "p90_us": 0}

    return {"list": timed(list_p50_ms, 0), "search": timed(search_p50_ms, errors)}


SEARCH_ARGS = argparse.Namespace(rows=1_000_000, workers=2, threads=2, connections=64)
SEARCH_ARGS.duration, SEARCH_ARGS.warmup = 10, 3


def test_search_is_held_to_3x_the_first_pages_p50_in_the_median_round_and_to_no_errors() -> None:
    near = [search_round(20, 59), search_round(30, 100), search_round(25, 70)]  # 2.95 3.33 2.8
    assert search_report(near, SEARCH_ARGS, 1000)[1] is True
    over = [search_round(20, 61), search_round(30, 60), search_round(20, 62)]  # 3.05 2.0 3.1
    text, met = search_report(over, SEARCH_ARGS, 1000)
    assert met is False
    assert "median of the rounds: 3.05 (worst round 3.10" in text
    one_error = [search_round(20, 30, errors=1)]
    assert search_report(one_error, SEARCH_ARGS, 1000)[1] is False
