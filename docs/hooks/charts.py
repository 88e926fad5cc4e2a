"""The Performance page's charts, drawn as SVG from the tables of bench/RESULTS.md.

RESULTS.md is the record of every measurement; the charts read its tables as they stand, so a
new run written there redraws them and a table whose shape changed stops the build (ChartError)
rather than drawing something stale. `python docs/hooks/charts.py OUT_DIR` writes the SVGs to a
folder; `make docs` runs the same code through the hook in docs/hooks/manual.py.
"""

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from math import floor, log10
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "RESULTS.md"

# Colours that read on white and for most colour-blind readers (Okabe and Ito's palette).
SERIES_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9")
TARGET_COLOUR = "#D55E00"
INK, GRID, FONT = "#222222", "#DDDDDD", "system-ui, -apple-system, 'Segoe UI', Arial, sans-serif"


class ChartError(ValueError):
    """RESULTS.md does not hold a table of the shape a chart reads."""


# ---------------------------------------------------------------- reading RESULTS.md


def section(text: str, heading: str) -> str:
    """The text under the first heading that starts with `heading`, up to the next one as high."""
    level = heading.split(" ", 1)[0]
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        raise ChartError(f"bench/RESULTS.md has no heading starting {heading!r}")
    body = []
    for line in lines[start + 1 :]:
        marks = line.split(" ", 1)[0]
        if set(marks) == {"#"} and len(marks) <= len(level):
            break
        body.append(line)
    return "\n".join(body)


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in text: rows of cells, the header row first, the rule row left out."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def table_with(text: str, first_header: str) -> list[list[str]]:
    for table in tables(text):
        if table[0][0] == first_header:
            return table
    raise ChartError(f"no table whose first column is {first_header!r}")


def number(cell: str) -> float:
    """The first number in a cell: `**1.53**`, `1.25 (1.2497)`, `72.8 MiB`, `1,000,000`."""
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?", cell)
    if match is None:
        raise ChartError(f"no number in the cell {cell!r}")
    return float(match.group().replace(",", ""))


def numbers(cell: str) -> list[float]:
    """Every number in a cell such as `6.8 / 9.2 / 4.7 ms`."""
    return [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", cell)]


@dataclass(frozen=True)
class Run:
    """The latest three-server run: per scenario, each server's figure."""

    heading: str
    scenarios: list[str]
    rps: dict[str, list[float]]
    p99_ms: dict[str, list[float]]
    cpu_us: dict[str, list[float]]


SERVERS = ("service", "FastAPI", "floor")


def latest_run(text: str) -> Run:
    heading = next(line for line in text.splitlines() if line.startswith("## Latest run"))
    rows = table_with(section(text, "## Latest run"), "scenario")
    header = [cell.lower() for cell in rows[0]]
    if not (header[1].startswith("service req/s") and header[6].startswith("p99")):
        raise ChartError(f"the latest run's table has other columns: {rows[0]}")
    scenarios: list[str] = []
    rps: dict[str, list[float]] = {s: [] for s in SERVERS}
    p99: dict[str, list[float]] = {s: [] for s in SERVERS}
    cpu: dict[str, list[float]] = {s: [] for s in SERVERS}
    for row in rows[1:]:
        scenarios.append(row[0])
        for server, cell in zip(SERVERS, row[1:4], strict=True):
            rps[server].append(number(cell))
        for values, cell in ((p99, row[6]), (cpu, row[7])):
            figures = numbers(cell)
            if len(figures) != len(SERVERS):
                raise ChartError(f"{row[0]}: expected three figures in {cell!r}")
            for server, figure in zip(SERVERS, figures, strict=True):
                values[server].append(figure)
    return Run(heading.removeprefix("## "), scenarios, rps, p99, cpu)


def soak(text: str) -> tuple[list[float], dict[str, list[float]]]:
    rows = table_with(section(text, "## Soak"), "requests")
    workers = rows[0][1:]
    counts = [number(row[0]) / 1e6 for row in rows[1:]]
    return counts, {w: [number(row[i + 1]) for row in rows[1:]] for i, w in enumerate(workers)}


def search_replay(text: str) -> tuple[list[str], dict[str, list[float]]]:
    """The slowest search per sort order, plain statement against the bounded walk (worst pass)."""
    rows = table_with(section(text, "### The bounded walk"), "order (fragments)")
    header = [cell.split()[0] for cell in rows[0]]
    column = header.index("max")
    orders: list[str] = []
    slowest: dict[str, dict[str, float]] = {}
    for row in rows[1:]:
        order, statement = row[0], row[1]
        if order not in orders:
            orders.append(order)
        best = slowest.setdefault(statement, {})
        best[order] = max(best.get(order, 0.0), number(row[column]))
    return orders, {name: [best[o] for o in orders] for name, best in slowest.items()}


def batches(text: str) -> tuple[list[str], dict[str, list[float]]]:
    rows = table_with(section(text, "## Stock ledger and batches"), "run (UTC)")
    runs = [f"{row[0]} UTC" for row in rows[1:]]
    return runs, {
        "single POSTs": [number(row[1]) for row in rows[1:]],
        "1000-product batches": [number(row[2]) for row in rows[1:]],
    }


# ---------------------------------------------------------------- drawing


def nice_top(value: float) -> float:
    """A round axis maximum at or above value: 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10.0 ** floor(log10(value))
    return next(
        step * power for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if step * power >= value
    )


def label(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


@dataclass(frozen=True)
class Target:
    """A horizontal line across some groups (all of them when groups is None)."""

    value: float
    text: str
    groups: Sequence[int] | None = None


class Svg:
    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height, self.parts = width, height, []
        self.parts.append(f'<rect width="{width}" height="{height}" fill="#ffffff"/>')
        self.text(16, 26, title, size=16, weight="600")

    def text(
        self,
        x: float,
        y: float,
        text: str,
        size: int = 12,
        anchor: str = "start",
        weight: str = "normal",
        colour: str = INK,
        rotate: float | None = None,
    ) -> None:
        turn = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{colour}"{turn}>{escape(text)}</text>'
        )

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        colour: str = GRID,
        width: float = 1,
        dash: str = "",
    ) -> None:
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{colour}" stroke-width="{width}"{dashes}/>'
        )

    def rect(self, x: float, y: float, w: float, h: float, colour: str, tip: str) -> None:
        self.parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{escape(tip)}</title></rect>"
        )

    def legend(self, names: Iterable[str], x: float, y: float) -> None:
        for n, name in enumerate(names):
            self.parts.append(
                f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" '
                f'fill="{SERIES_COLOURS[n]}"/>'
            )
            self.text(x + 17, y, name)
            x += 30 + 7.2 * len(name)

    def render(self, description: str) -> str:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" font-family="{FONT}">'
            f"<desc>{escape(description)}</desc>{''.join(self.parts)}</svg>\n"
        )


def bar_chart(
    title: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    unit: str,
    description: str,
    targets: Sequence[Target] = (),
    log: bool = False,
    width: int = 760,
    height: int = 340,
) -> str:
    """Grouped bars: one group per scenario, one bar per series, optional target lines."""
    svg = Svg(width, height, title)
    left, right, top, bottom = 64, 16, 62 + (18 if targets else 0), 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs] + [t.value for t in targets]
    if log:
        low = 10.0 ** floor(log10(min(v for v in values if v > 0)))
        high = max(values) * 1.3
        ticks = [low * 10**n for n in range(floor(log10(high / low)) + 1)]

        def scale(v: float) -> float:
            return plot_h * (log10(max(v, low)) - log10(low)) / (log10(high) - log10(low))
    else:
        high = nice_top(max(values) * 1.05)
        ticks = [high * n / 5 for n in range(6)]

        def scale(v: float) -> float:
            return plot_h * v / high

    svg.legend(series, left, 48)
    for tick in ticks:
        y = top + plot_h - scale(tick)
        svg.line(left, y, left + plot_w, y)
        svg.text(left - 6, y + 4, label(tick), size=11, anchor="end")
    svg.text(16, top + plot_h / 2, unit, size=11, anchor="middle", rotate=-90)
    group_w = plot_w / len(groups)
    bar_w = min(28.0, (group_w - 14) / len(series))
    for g, group in enumerate(groups):
        x0 = left + g * group_w + (group_w - bar_w * len(series)) / 2
        for s, (name, vs) in enumerate(series.items()):
            h = scale(vs[g])
            svg.rect(
                x0 + s * bar_w,
                top + plot_h - h,
                bar_w - 2,
                h,
                SERIES_COLOURS[s],
                f"{group}, {name}: {label(vs[g])} {unit}",
            )
        svg.text(left + (g + 0.5) * group_w, top + plot_h + 18, group, anchor="middle")
    for target in targets:
        y = top + plot_h - scale(target.value)
        spans = range(len(groups)) if target.groups is None else target.groups
        for g in spans:
            svg.line(
                left + g * group_w + 3, y, left + (g + 1) * group_w - 3, y, TARGET_COLOUR, 2, "6 3"
            )
    if targets:
        named = "; ".join(target.text for target in targets)
        svg.line(left, 62, left + 22, 62, TARGET_COLOUR, 2, "6 3")
        svg.text(left + 28, 66, f"targets: {named}", size=11, colour=TARGET_COLOUR)
    svg.line(left, top + plot_h, left + plot_w, top + plot_h, INK)
    return svg.render(description)


def line_chart(
    title: str,
    xs: Sequence[float],
    series: Mapping[str, Sequence[float]],
    x_unit: str,
    unit: str,
    description: str,
    target: Target,
    width: int = 760,
    height: int = 300,
) -> str:
    svg = Svg(width, height, title)
    left, right, top, bottom = 64, 16, 62, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    high = nice_top(max([target.value, *(v for vs in series.values() for v in vs)]) * 1.05)
    x_low, x_high = 0.0, max(xs)

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + plot_w * (x - x_low) / (x_high - x_low), top + plot_h * (1 - y / high))

    svg.legend(series, left, 48)
    for n in range(6):
        tick = high * n / 5
        svg.line(left, at(0, tick)[1], left + plot_w, at(0, tick)[1])
        svg.text(left - 6, at(0, tick)[1] + 4, label(tick), size=11, anchor="end")
    for x in xs:
        svg.text(at(x, 0)[0], top + plot_h + 18, f"{x:g}", anchor="middle")
    svg.text(left + plot_w / 2, height - 10, x_unit, size=11, anchor="middle")
    svg.text(16, top + plot_h / 2, unit, size=11, anchor="middle", rotate=-90)
    y = at(0, target.value)[1]
    svg.line(left, y, left + plot_w, y, TARGET_COLOUR, 2, "6 3")
    svg.text(left + plot_w - 4, y - 5, target.text, size=11, anchor="end", colour=TARGET_COLOUR)
    for s, (name, vs) in enumerate(series.items()):
        points = " ".join(
            f"{px:.1f},{py:.1f}" for px, py in (at(x, v) for x, v in zip(xs, vs, strict=True))
        )
        svg.parts.append(
            f'<polyline points="{points}" fill="none" stroke="{SERIES_COLOURS[s]}" '
            f'stroke-width="2.5"/>'
        )
        for x, v in zip(xs, vs, strict=True):
            px, py = at(x, v)
            svg.parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{SERIES_COLOURS[s]}">'
                f"<title>{escape(f'{name}, {x:g} {x_unit}: {v:g} {unit}')}</title></circle>"
            )
    svg.line(left, top + plot_h, left + plot_w, top + plot_h, INK)
    return svg.render(description)


# ---------------------------------------------------------------- the charts


def ratio(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [round(x / y, 2) for x, y in zip(a, b, strict=True)]


def charts(text: str) -> dict[str, str]:
    """Every chart of the Performance page, by file name."""
    run = latest_run(text)
    scenarios = run.scenarios
    reads = [i for i, s in enumerate(scenarios) if s in ("get", "list", "deep", "mix")]
    writes = [i for i, s in enumerate(scenarios) if s in ("post", "put", "put_if_match")]
    health = [i for i, s in enumerate(scenarios) if s == "health"]
    database = [i for i, s in enumerate(scenarios) if s != "health"]
    counts, rss = soak(text)
    orders, slowest = search_replay(text)
    runs, products = batches(text)
    source = f"bench/RESULTS.md, {run.heading}"
    return {
        "throughput.svg": bar_chart(
            "Requests per second, by scenario",
            scenarios,
            run.rps,
            "requests/s",
            f"Requests per second of the service, the FastAPI reference and the floor ({source}).",
        ),
        "ratios.svg": bar_chart(
            "The service's requests per second as a share of the others'",
            scenarios,
            {
                "service / FastAPI": ratio(run.rps["service"], run.rps["FastAPI"]),
                "service / floor": ratio(run.rps["service"], run.rps["floor"]),
            },
            "ratio",
            f"Throughput ratios against the targets ({source}).",
            targets=[
                Target(1.25, "1.25x FastAPI", database),
                Target(0.65, "0.65 (reads)", reads),
                Target(0.60, "0.60 (writes)", writes),
                Target(0.50, "0.50 (health) of the floor", health),
            ],
        ),
        "p99.svg": bar_chart(
            "p99 latency under 64 connections",
            scenarios,
            run.p99_ms,
            "ms",
            f"99th percentile latency of each server ({source}).",
        ),
        "cpu.svg": bar_chart(
            "CPU per request (the servers' workers)",
            scenarios,
            run.cpu_us,
            "µs",
            f"Worker CPU time per request of each server ({source}).",
        ),
        "soak.svg": line_chart(
            "Worker memory over a 5-million-request soak",
            counts,
            rss,
            "million requests",
            "MiB",
            "RSS of each worker at each million requests (bench/RESULTS.md, Soak).",
            Target(80, "target: under 80 MiB"),
        ),
        "search.svg": bar_chart(
            "The slowest search at a million products, one connection",
            orders,
            slowest,
            "ms (log scale)",
            "Slowest search per sort order, plain statement against the bounded walk "
            "(bench/RESULTS.md, The bounded walk).",
            log=True,
        ),
        "batches.svg": bar_chart(
            "Products written per second: single POSTs against batches",
            runs,
            products,
            "products/s",
            "Products per second of single POSTs and of 1000-product batches, three runs "
            "(bench/RESULTS.md, Stock ledger and batches).",
            targets=[],
        ),
    }


def write_all(folder: Path, results: Path = RESULTS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, svg in charts(results.read_text()).items():
        (folder / name).write_text(svg)
        written.append(folder / name)
    return written


def main(argv: Sequence[str], say: Callable[[str], None] = print) -> int:
    if len(argv) != 1:
        say("usage: python docs/hooks/charts.py OUT_DIR")
        return 2
    for path in write_all(Path(argv[0])):
        say(str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
