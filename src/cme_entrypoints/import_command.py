"""`cme import`: load a product feed through POST /products/batch, as any client would."""

import argparse
import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from cme_entrypoints.import_feed import Row, feed_format, rows
from cme_entrypoints.settings import Settings

BATCH_MAX: Final = 1000
# A batch that met a network error or a 503 is sent again, with the same Idempotency-Key.
ATTEMPTS: Final = 3


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
        print(f"cme import: --batch-size must be 1-{BATCH_MAX}", file=sys.stderr)
        return 2
    if not args.url.startswith(("http://", "https://")):
        print("cme import: --url must be an http:// or https:// URL", file=sys.stderr)
        return 2
    api_key = args.api_key or os.environ.get("CME_API_KEY", "")
    if not api_key:
        print("cme import: give the API key with --api-key or CME_API_KEY", file=sys.stderr)
        return 2
    try:
        stream = args.file.open(encoding="utf-8", newline="")
    except OSError as error:
        print(f"cme import: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 2
    client = BatchClient(args.url.rstrip("/"), api_key, args.mode)
    tally = Tally()
    started = time.monotonic()
    with stream:
        for batch in _batches(rows(stream, feed_format(args.file, args.format)), args.batch_size):
            _send(client, batch, tally)
            rate = tally.sent / max(time.monotonic() - started, 1e-9)
            print(
                f"cme import: batch {tally.batches}: {tally.sent} products so far"
                f" ({rate:.0f}/s), {tally.rejected} rejected",
                file=sys.stderr,
            )
    elapsed = time.monotonic() - started
    print(
        f"cme import: {tally.sent} products in {tally.batches} batches, {elapsed:.1f} s:"
        f" {tally.created} created, {tally.replaced} replaced, {tally.already} already imported,"
        f" {tally.rejected} rejected"
        f" ({tally.rejected_batches} batches)"
    )
    return 1 if tally.rejected_batches else 0


def _batches(feed: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in feed:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _send(client: "BatchClient", batch: list[Row], tally: Tally) -> None:
    tally.batches += 1
    unreadable = [row for row in batch if row.body is None]
    if unreadable:
        for row in unreadable:
            _report(tally.batches, f"line {row.line}: {row.problem}")
        _reject(batch, tally)
        return
    status, replayed, answer = client.send([row.body for row in batch])
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
        print(f"  {_in_file(error['field'], batch)}: {error['message']}", file=sys.stderr)
    _reject(batch, tally)


def _reject(batch: list[Row], tally: Tally) -> None:
    tally.rejected += len(batch)
    tally.rejected_batches += 1


def _report(batch: int, message: str) -> None:
    print(f"cme import: batch {batch} rejected, nothing of it written: {message}", file=sys.stderr)


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

    def send(self, products: list[Any]) -> tuple[int, bool, Any]:
        """The status, whether it is a replay of an earlier run's batch, and the answer."""
        body = orjson.dumps({"mode": self._mode, "products": products}, default=_decimal)
        headers = {
            "Content-Type": "application/json",
            "X-API-Key": self._api_key,
            # The same batch gets the same key: sent again, it is answered, not rewritten.
            "Idempotency-Key": "import-" + hashlib.sha256(body).hexdigest(),
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


def _decimal(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)
