"""The search mode's report: rounds of the first page and of `q` side by side, and the target."""

import argparse
import statistics
from datetime import UTC, datetime

SEARCH_P50_RATIO = 3.0  # target: the median p50 of search at most this times the first page's


def search_report(
    table: list[dict[str, dict]], args: argparse.Namespace, queries: int
) -> tuple[str, bool]:
    """The rounds side by side, and the target judged on the median of the rounds' p50 ratios:
    each round's two scenarios ran in the same minute, so they shared the machine's noise."""
    ratios = [r["search"]["p50_us"] / max(r["list"]["p50_us"], 1e-9) for r in table]
    ratio = float(statistics.median(ratios))
    met = ratio <= SEARCH_P50_RATIO and all(r[n]["errors"] == 0 for r in table for n in r)
    rows = [
        f"| {n + 1} | {name} | {r[name]['rps']:.0f} | {r[name]['p50_us'] / 1000:.2f} | "
        f"{r[name]['p90_us'] / 1000:.2f} | {r[name]['p99_us'] / 1000:.2f} | "
        f"{r[name]['server_cpu_us_per_request']} | {r[name]['errors']} | "
        f"{100 * r[name]['other_cpu_share']:.0f} % | "
        + (f"{ratios[n]:.2f} |" if name == "search" else " |")
        for n, r in enumerate(table)
        for name in ("list", "search")
    ]
    text = "\n".join(
        [
            f"# Search at {args.rows:,} products, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"`cme serve --workers {args.workers}`, wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration:g}s after {args.warmup:g} s of warm-up, list (`GET "
            "/products?limit=20`) and search (the same with `q`, one of "
            f"{queries} fragments of 3-5 characters cut from seeded names, at random) "
            "in alternation.",
            "",
            "| round | scenario | req/s | p50 ms | p90 ms | p99 ms | CPU us/req | errors "
            "| others' CPU | p50 search / list |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            f"p50 of search / p50 of list, median of the rounds: {ratio:.2f} (worst round "
            f"{max(ratios):.2f}; target <= {SEARCH_P50_RATIO:g}, no errors): "
            + ("met" if met else "NOT met"),
            "",
        ]
    )
    return text, met
