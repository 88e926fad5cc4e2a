"""`cme import`: load a product feed through POST /products/batch, as any client would."""

import argparse
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import attrs

from cme_entrypoints.http.stock import BATCH_BODY_BYTES
from cme_entrypoints.import_client import BatchClient, Stop, detail
from cme_entrypoints.import_feed import FORMATS, Row, feed_format, rows
from cme_entrypoints.settings import Settings

BATCH_MAX: Final = 1000
# What a batch's body holds besides its products: {"mode":"upsert","products":[]}.
ENVELOPE_BYTES: Final = len(b'{"mode":"create","products":[]}')
# A batch answer's products[0, 3], its items by index.
_INDEXES: Final = re.compile(r"products\[(\d+(?:, ?\d+)*)\]")
# C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional controls:
# text from the server or the file must not move the cursor, forge a line or reorder one.
_UNPRINTABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    command = commands.add_parser(
        "import",
        help="import products from an NDJSON or CSV file through the HTTP API",
        description=(
            "Send FILE's products to a running service in batches (POST /products/batch, "
            "upsert by sku: a new sku is created, an existing one replaced). NDJSON has one "
            "product object a line; CSV has the header sku,name,description,price,quantity. "
            "Progress goes to stderr, a summary at the end; the exit status is 1 if any batch "
            "was rejected or not answered, or the run stopped at an answer every batch would "
            "get (401, 403, 404, no server). 429s are waited out. Run it again to resume: "
            "every batch carries an Idempotency-Key made from its content, so a batch already "
            "written is answered from the record, not written twice. The API key comes from "
            "--api-key or CME_API_KEY."
        ),
    )
    command.add_argument("file", type=Path, help="the feed: .ndjson/.jsonl or .csv")
    command.add_argument(
        "--url", required=True, help="the service's root, e.g. http://127.0.0.1:5000"
    )
    command.add_argument("--api-key", help="X-API-Key to send (default: env CME_API_KEY)")
    command.add_argument(
        "--format", choices=("ndjson", "csv"), help="the file's format (default: by its suffix)"
    )
    command.add_argument(
        "--batch-size",
        type=int,
        default=500,
        help=f"products per request, 1-{BATCH_MAX} (default 500)",
    )
    command.add_argument(
        "--mode",
        choices=("upsert", "create"),
        default="upsert",
        help="upsert (default; safe to run again) or create (every sku must be new)",
    )
    command.set_defaults(run=run)


@attrs.define
class Tally:
    batches: int = 0
    rejected_batches: int = 0
    created: int = 0
    replaced: int = 0
    already: int = 0  # in batches an earlier run wrote: answered from the record
    rejected: int = 0
    unanswered_batches: int = 0  # met network failures every time they were sent
    unanswered: int = 0

    @property
    def sent(self) -> int:
        return self.created + self.replaced + self.already + self.rejected + self.unanswered

    def summary(self, elapsed: float) -> str:
        text = (
            f"{_count(self.sent, 'product')} in {_count(self.batches, 'batch', 'batches')},"
            f" {elapsed:.1f} s: {self.created} created, {self.replaced} replaced,"
            f" {self.already} already imported, {self.rejected} rejected"
            f" ({_count(self.rejected_batches, 'batch', 'batches')})"
        )
        if self.unanswered:
            batches = _count(self.unanswered_batches, "batch", "batches")
            text += f", {self.unanswered} not answered ({batches}: network failures)"
        return text


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not 1 <= args.batch_size <= BATCH_MAX:
        say(f"--batch-size must be 1-{BATCH_MAX}")
        return 2
    if not args.url.startswith(("http://", "https://")):
        say("--url must be an http:// or https:// URL")
        return 2
    api_key = args.api_key or os.environ.get("CME_API_KEY", "")
    if not api_key:
        say("give the API key with --api-key or CME_API_KEY")
        return 2
    try:
        # A byte that is not UTF-8 refuses its line (import_feed), not the whole run.
        stream = args.file.open(encoding="utf-8", errors="surrogateescape", newline="")
    except OSError as error:
        say(f"cannot read {args.file}: {error.strerror}")
        return 2
    kind = feed_format(args.file, args.format)
    if kind is None:
        stream.close()
        say(
            f"cannot tell the format of {args.file} from its suffix"
            f" ({', '.join(FORMATS)}): name it with --format ndjson or --format csv"
        )
        return 2
    tally = Tally()
    client = BatchClient(
        args.url.rstrip("/"), api_key, args.mode, lambda m: say(f"batch {tally.batches}: {m}")
    )
    started = time.monotonic()
    status = 0
    with stream:
        try:
            for batch in batches(rows(stream, kind), args.batch_size, BATCH_BODY_BYTES):
                _send(client, batch, tally)
                rate = tally.sent / max(time.monotonic() - started, 1e-9)
                say(
                    f"batch {tally.batches}: {_count(tally.sent, 'product')} so far"
                    f" ({rate:.0f}/s), {tally.rejected} rejected"
                )
        except Stop as stop:
            tally.batches -= 1  # the batch it stopped at was not written, nor refused
            say(f"stopped at batch {tally.batches + 1}: {stop}")
            status = 1
    print("cme import: " + tally.summary(time.monotonic() - started))
    return 1 if status or tally.rejected_batches or tally.unanswered_batches else 0


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"


def batches(feed: Iterator[Row], size: int, limit: int) -> Iterator[list[Row]]:
    """Runs of at most size rows whose batch body stays within limit bytes; a product too
    large for any batch is refused on its own line."""
    batch: list[Row] = []
    used = ENVELOPE_BYTES
    for row in feed:
        cost = len(row.product) + 1 if row.product is not None else 0  # +1: the comma
        if ENVELOPE_BYTES + cost > limit:
            row = attrs.evolve(row, product=None, problem=f"larger than a batch's {limit} bytes")
            cost = 0
        if batch and (len(batch) == size or used + cost > limit):
            yield batch
            batch, used = [], ENVELOPE_BYTES
        batch.append(row)
        used += cost
    if batch:
        yield batch


def _send(client: "BatchClient", batch: list[Row], tally: Tally) -> None:
    tally.batches += 1
    unreadable = [row for row in batch if row.product is None]
    if unreadable:
        for row in unreadable:
            _report(tally.batches, f"{row.where}: {row.problem}")
        _reject(batch, tally)
        return
    status, replayed, answer = client.send(
        [row.product for row in batch if row.product is not None]
    )
    if status == 200 and replayed:
        tally.already += len(batch)
        return
    if status == 200:
        statuses = [item["status"] for item in answer["items"]]
        tally.created += statuses.count(201)
        tally.replaced += statuses.count(200)
        return
    if status == 0:
        say(f"batch {tally.batches} not answered, it may or may not be written: {detail(answer)}")
        tally.unanswered += len(batch)
        tally.unanswered_batches += 1
        return
    _report(tally.batches, f"HTTP {status}: {_lines_in(detail(answer), batch)}")
    for error in answer.get("errors", []) if isinstance(answer, dict) else []:
        say(f"{_in_file(str(error.get('field')), batch)}: {error.get('message')}", prefix="  ")
    _reject(batch, tally)


def _reject(batch: list[Row], tally: Tally) -> None:
    tally.rejected += len(batch)
    tally.rejected_batches += 1


def _report(batch: int, message: str) -> None:
    say(f"batch {batch} rejected, nothing of it written: {message}")


def say(message: str, prefix: str = "cme import: ") -> None:
    """A line on stderr, its text from the file or the server escaped."""
    print(prefix + printable(message), file=sys.stderr)


def printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


def _lines_in(text: str, batch: list[Row]) -> str:
    """A 409's products[0, 3] as the file's lines: 'lines 2, 5'."""

    def lines(match: re.Match[str]) -> str:
        indexes = [int(i) for i in match[1].split(",")]
        if not all(i < len(batch) for i in indexes):
            return match[0]
        numbers = ", ".join(str(batch[i].line) for i in indexes)
        return f"line{'s' if len(indexes) > 1 else ''} {numbers}"

    return _INDEXES.sub(lines, text)


def _in_file(field: str, batch: list[Row]) -> str:
    """products[3].price as the file's line: 'line 42 price'."""
    if field.startswith("products[") and "]" in field:
        index, _, rest = field.removeprefix("products[").partition("]")
        if index.isdigit() and int(index) < len(batch):
            return f"line {batch[int(index)].line} {rest.lstrip('.')}".rstrip()
    return field
