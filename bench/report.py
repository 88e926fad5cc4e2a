"""The benchmark's report: issue 13's targets checked against a run, and the table in Markdown."""

from typing import Any

SERVERS = ("service", "fastapi", "floor")  # the table's column order
HEALTH = "health"  # the only scenario that touches no database
READS = ("get", "list", "deep", "mix")  # mix (90 % reads) is held to the read target
WRITES = ("post", "put", "put_if_match")

MIDDLEWARES = {"asgi": "a pure ASGI class", "http": '`@app.middleware("http")`'}

# The service's targets: against the FastAPI reference on every scenario that touches the
# database, against the floor by kind of scenario, and its own latency, memory and start-up.
TARGETS = {
    "fastapi_ratio": 1.25,
    "read_ratio": 0.65,
    "write_ratio": 0.60,
    "health_ratio": 0.50,
    "p99_ratio": 1.5,
    "rss_mib": 80,
    "start_s": 1.0,
    "soak_growth_pct": 5.0,
}


def floor_target(scenario: str) -> float:
    if scenario == HEALTH:
        return TARGETS["health_ratio"]
    return TARGETS["read_ratio"] if scenario in READS else TARGETS["write_ratio"]


def ratio(a: dict[str, Any], b: dict[str, Any], key: str = "rps") -> float:
    return float(a[key]) / max(float(b[key]), 1e-9)


def verdicts(report: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for every target the run can judge."""
    found = []
    for scenario, by in report["scenarios"].items():
        ours, ref, bare = by["service"], by["fastapi"], by["floor"]
        if scenario != HEALTH:
            want, got = TARGETS["fastapi_ratio"], ratio(ours, ref)
            found.append((f"{scenario}: req/s >= {want}x FastAPI", got >= want, f"{got:.2f}x"))
        want, got = floor_target(scenario), ratio(ours, bare)
        found.append((f"{scenario}: req/s >= {want} of the floor", got >= want, f"{got:.2f}"))
        want, got = TARGETS["p99_ratio"], ratio(ours, bare, "p99_us")
        found.append((f"{scenario}: p99 <= {want}x the floor's", got <= want, f"{got:.2f}x"))
        found.append((f"{scenario}: zero errors", ours["errors"] == 0, str(ours["errors"])))
        others = ref["errors"] + bare["errors"]
        # Not a target of the service, but a comparison with a failing reference means nothing.
        found.append((f"{scenario}: FastAPI and floor error-free", others == 0, str(others)))
    workers = report["rss_kib"]["service"].values()
    rss = max((v.get("VmRSS", 0) for v in workers), default=0) / 1024
    peak = max((v.get("VmHWM", 0) for v in workers), default=0) / 1024
    limit = TARGETS["rss_mib"]
    found.append(
        (
            f"RSS per worker < {limit} MiB after the run",
            0 < rss < limit,
            f"{rss:.1f} MiB (peak {peak:.1f})",
        )
    )
    if report["startup_s"]:
        worst, limit = max(report["startup_s"]), TARGETS["start_s"]
        found.append(
            (f"start to /db-check 200 < {limit} s (worst)", worst < limit, f"{worst:.3f} s")
        )
    return found


def render(report: dict[str, Any]) -> str:
    m, a = report["machine"], report["args"]
    lines = [
        f"# cme benchmark, {m['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), shared by wrk, the servers' workers and "
        f"PostgreSQL {m['postgresql']}; Python {m['python']}, kernel {m['kernel']}, {m['wrk']}; "
        f"{m['versions']}.",
        f"Code: commit {m['commit']} (sha256 of src/*.py {m['src_sha256']}); load average "
        f"before the run {m['loadavg_before']}.",
        f"Load: wrk -t{a['threads']} -c{a['connections']} -d{a['duration']}s per scenario and "
        f"server ({a['warmup']} s warm-up first), the servers' order rotating per scenario; "
        f"{a['rows']} products; 2 uvicorn workers each (httptools, uvloop), DB pool {a['pool']} "
        "per worker. Service: `cme serve`, JSON access log at INFO to bench/out/service.log. "
        "FastAPI: bench/fastapi_ref under the uvicorn command, its default access log to "
        f"bench/out/fastapi.log, metrics middleware {MIDDLEWARES[a['fastapi_middleware']]}. "
        "Floor: bench/floor.py, no log.",
        "",
        "| scenario | req/s service | FastAPI | floor | service / FastAPI | service / floor "
        "| p99 service | FastAPI | floor | p99 service / floor | errors s / F / f "
        "| CPU us/req s / F / f | others' CPU |",
        "| --- " + "| ---: " * 9 + "| --- | ---: | ---: |",
    ]
    for scenario, by in report["scenarios"].items():
        row = [by[name] for name in SERVERS]
        ours, ref, bare = row
        lines.append(
            f"| {scenario} | "
            + " | ".join(f"{r['rps']:.0f}" for r in row)
            + f" | {ratio(ours, ref):.2f} | {ratio(ours, bare):.2f} | "
            + " | ".join(f"{r['p99_us'] / 1000:.1f} ms" for r in row)
            + f" | {ratio(ours, bare, 'p99_us'):.2f}x | "
            + " / ".join(str(r["errors"]) for r in row)
            + " | "
            + " / ".join(f"{r['server_cpu_us_per_request']:.0f}" for r in row)
            + f" | {100 * max(r['other_cpu_share'] for r in row):.0f} % |"
        )
    lines += [
        "",
        "CPU us/req: CPU time of the server's two workers over the run divided by the requests "
        "served (the work per request, whatever the load on the machine). Others' CPU: the share "
        "of the machine's CPU used by processes other than wrk, the server under test and "
        "PostgreSQL during the run (the largest of the three runs): other tenants' noise.",
        "",
        "Start-up to /db-check 200 (s): " + ", ".join(f"{s:.3f}" for s in report["startup_s"]),
        "",
        "RSS after the run (KiB, VmRSS / VmHWM peak):",
    ]
    for name, per_pid in report["rss_kib"].items():
        for pid, value in per_pid.items():
            lines.append(f"- {name} worker {pid}: {value.get('VmRSS')} / {value.get('VmHWM')}")
    written = ", ".join(f"{name} {n}" for name, n in report["access_log_lines"].items())
    lines += ["", f"Access log lines written: {written}.", ""]
    lines += ["| target | met | measured |", "| --- | --- | --- |"]
    lines += [f"| {name} | {'yes' if ok else 'NO'} | {got} |" for name, ok, got in verdicts(report)]
    for tag, text in report.get("profiles", {}).items():
        lines += ["", f"## Profile {tag}", "", "```", text.rstrip(), "```"]
    return "\n".join(lines) + "\n"
