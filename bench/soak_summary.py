"""The soak's verdict: worker RSS at each million requests, and its growth from the first."""

from typing import Any


def milestones(samples: list[dict[str, Any]], step: int) -> list[tuple[int, dict[str, Any]]]:
    """(k, the first sample at or past k * step requests) for every k the soak reached."""
    found: list[tuple[int, dict[str, Any]]] = []
    for sample in samples:
        while sample["requests"] >= (len(found) + 1) * step:
            found.append((len(found) + 1, sample))
    return found


def summarise(
    samples: list[dict[str, Any]], workers: list[int], step: int, growth_pct: float, rss_mib: float
) -> tuple[list[str], bool]:
    """Report lines, and whether RSS grew less than growth_pct from the first milestone to the
    fifth (or the last reached) and every worker stayed under rss_mib. A worker missing from a
    sample (it died and was replaced) fails the soak."""
    marks = milestones(samples, step)
    if len(marks) < 2:  # too short for two milestones: compare the first and the last chunk
        marks = [(0, samples[0]), (-1, samples[-1])]
    lines = []
    for k, sample in marks:
        label = f"{k * step:,}" if k > 0 else ("first chunk" if k == 0 else "last chunk")
        rss = ", ".join(f"{sample['rss_kib'].get(str(p), 0) / 1024:.1f}" for p in workers)
        lines.append(f"  {label} (sampled at {sample['requests']:,}): RSS MiB per worker {rss}")
    (k0, early), (k1, late) = marks[0], marks[min(4, len(marks) - 1)]
    met = True
    for pid in workers:
        before, after = early["rss_kib"].get(str(pid), 0), late["rss_kib"].get(str(pid), 0)
        peak = max(s["rss_kib"].get(str(pid), 0) for s in samples) / 1024
        growth = (after - before) / before * 100 if before and after else float("inf")
        met = met and growth < growth_pct and peak < rss_mib
        lines.append(
            f"  worker {pid}: {before / 1024:.1f} -> {after / 1024:.1f} MiB "
            f"({growth:+.1f} %), highest {peak:.1f} MiB"
        )
    span = f"{k0 * step:,} to {k1 * step:,} requests" if k0 > 0 else "the first to the last chunk"
    lines.append(
        f"  growth from {span}: target < {growth_pct:g} % and under {rss_mib:g} MiB: "
        + ("met" if met else "NOT met")
    )
    return lines, met
