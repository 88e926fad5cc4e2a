"""Reading an import feed: NDJSON or CSV lines as product bodies, with their line numbers."""

import csv
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TextIO

import attrs

CSV_COLUMNS: Final = ("sku", "name", "description", "price", "quantity")


@attrs.frozen
class Row:
    """One product of the feed as the API will read it, or why it cannot be sent."""

    line: int
    body: dict[str, Any] | None
    problem: str | None = None


def feed_format(path: Path, chosen: str | None) -> str:
    if chosen:
        return chosen
    return "csv" if path.suffix.lower() == ".csv" else "ndjson"


def rows(stream: TextIO, kind: str) -> Iterator[Row]:
    return _csv_rows(stream) if kind == "csv" else _ndjson_rows(stream)


def _ndjson_rows(stream: TextIO) -> Iterator[Row]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            # Decimal keeps a price like 19.99 exactly as written.
            body = json.loads(line, parse_float=Decimal)
        except ValueError:
            yield Row(number, None, "not a JSON object")
            continue
        if isinstance(body, dict):
            yield Row(number, body)
        else:
            yield Row(number, None, "not a JSON object")


def _csv_rows(stream: TextIO) -> Iterator[Row]:
    reader = csv.DictReader(stream)
    missing = set(CSV_COLUMNS) - {"description"} - set(reader.fieldnames or ())
    if missing:
        yield Row(1, None, f"the header lacks {', '.join(sorted(missing))}")
        return
    for record in reader:
        body: dict[str, Any] = {k: v for k, v in record.items() if k is not None}
        if body.get("description") == "":
            body["description"] = None  # CSV cannot tell an empty text from none
        quantity = body.get("quantity")
        if isinstance(quantity, str) and quantity.strip().isdigit():
            body["quantity"] = int(quantity)  # anything else is left for the API to refuse
        yield Row(reader.line_num, body)
