"""`cme import`: load a product feed through POST /products/batch, as any client would."""

import argparse
import hashlib
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from cme_entrypoints.http.stock import BATCH_BODY_BYTES
from cme_entrypoints.import_feed import Row, feed_format, rows
from cme_entrypoints.settings import Settings

BATCH_MAX: Final = 1000
# A batch that met a network error or a 503 is sent again, with the same Idempotency-Key.
ATTEMPTS: Final = 3
# What a batch's body holds besides its products: {"mode":"upsert","products":[]}.
ENVELOPE_BYTES: Final = len(b'{"mode":"create","products":[]}')
# A batch whose earlier write was since deleted in part is sent again under the key of the
# next generation (a run that wrote it again made that one); past this many, something else
# keeps deleting what the feed writes, and the batch is reported.
GENERATIONS: Final = 20
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
            "was rejected. Run it again to resume: every batch carries an Idempotency-Key made "
            "from its content, so a batch already written is answered from the record, not "
            "written twice. The API key comes from --api-key or CME_API_KEY."
        ),
    )
    command.add_argument("file", type=Path, help="the feed: .ndjson/.jsonl or .csv")
    command.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:5000")
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

    @property
    def sent(self) -> int:
        return self.created + self.replaced + self.already + self.rejected


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
    client = BatchClient(args.url.rstrip("/"), api_key, args.mode)
    tally = Tally()
    started = time.monotonic()
    with stream:
        feed = rows(stream, feed_format(args.file, args.format))
        for batch in batches(feed, args.batch_size, BATCH_BODY_BYTES):
            _send(client, batch, tally)
            rate = tally.sent / max(time.monotonic() - started, 1e-9)
            say(
                f"batch {tally.batches}: {tally.sent} products so far"
                f" ({rate:.0f}/s), {tally.rejected} rejected"
            )
    elapsed = time.monotonic() - started
    print(
        f"cme import: {tally.sent} products in {tally.batches} batches, {elapsed:.1f} s:"
        f" {tally.created} created, {tally.replaced} replaced, {tally.already} already imported,"
        f" {tally.rejected} rejected"
        f" ({tally.rejected_batches} batches)"
    )
    return 1 if tally.rejected_batches else 0


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
    detail = answer.get("detail", "") if isinstance(answer, dict) else str(answer)
    _report(tally.batches, f"HTTP {status}: {detail}")
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


def _in_file(field: str, batch: list[Row]) -> str:
    """products[3].price as the file's line: 'line 42 price'."""
    if field.startswith("products[") and "]" in field:
        index, _, rest = field.removeprefix("products[").partition("]")
        if index.isdigit() and int(index) < len(batch):
            return f"line {batch[int(index)].line} {rest.lstrip('.')}".rstrip()
    return field


class BatchClient:
    def __init__(self, base_url: str, api_key: str, mode: str) -> None:
        self._url = f"{base_url}/products/batch"
        self._api_key = api_key
        self._mode = mode

    def send(self, products: list[bytes]) -> tuple[int, bool, Any]:
        """The status, whether it is a replay of an earlier run's batch, and the answer."""
        mode = orjson.dumps(self._mode)
        body = b'{"mode":' + mode + b',"products":[' + b",".join(products) + b"]}"
        # The same batch gets the same key: sent again, it is answered, not rewritten.
        key = "import-" + hashlib.sha256(body).hexdigest()
        for generation in range(GENERATIONS):
            answer = self._post(body, key if generation == 0 else f"{key}-{generation}")
            if answer[0] != 409 or _slug(answer[2]) != "idempotent-product-deleted":
                return answer
            # The record answers for products deleted since: the file says they exist, so the
            # batch is written again, under a key that a later run will find answered.
        return answer

    def _post(self, body: bytes, key: str) -> tuple[int, bool, Any]:
        headers = {
            "Content-Type": "application/json",
            "X-API-Key": self._api_key,
            "Idempotency-Key": key,
        }
        for attempt in range(1, ATTEMPTS + 1):
            # The URL is the operator's own --url: http(s) to the service they name.
            request = urllib.request.Request(self._url, body, headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(  # noqa: S310  # nosec B310  # the operator's --url
                    request, timeout=120
                ) as response:
                    replayed = response.headers.get("Idempotent-Replayed") == "true"
                    return response.status, replayed, orjson.loads(response.read())
            except urllib.error.HTTPError as error:
                answer = _json_or_text(error.read())
                if error.code not in (409, 503) or attempt == ATTEMPTS:
                    return error.code, False, answer
                if error.code == 409 and "in progress" not in str(answer):
                    return error.code, False, answer
            except (urllib.error.URLError, OSError) as error:
                if attempt == ATTEMPTS:
                    return 0, False, {"detail": f"no answer from {self._url}: {error}"}
            time.sleep(attempt)
        raise AssertionError("unreachable: the last attempt returns")


def _json_or_text(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"detail": raw.decode("utf-8", "replace")[:200]}


def _slug(answer: Any) -> str:
    kind = answer.get("type") if isinstance(answer, dict) else None
    return kind.removeprefix("urn:cme:problem:") if isinstance(kind, str) else ""
