"""Reading an import feed: NDJSON or CSV lines as product bodies, with their line numbers."""

import csv
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Final, TextIO

import attrs
import orjson

from cme_entrypoints.http.body import MAX_JSON_DEPTH, parse_json
from cme_entrypoints.http.problems import Problem

CSV_COLUMNS: Final = ("sku", "name", "description", "price", "quantity")
FORMATS: Final = {".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
# A product sits two levels down in a batch's body (the object, its "products" array), and
# the API bounds the depth of the whole body.
LINE_DEPTH: Final = MAX_JSON_DEPTH - 2
# The feed is opened with errors="surrogateescape": a byte that is not UTF-8 becomes one of
# these instead of ending the run, and no UTF-8 text decodes to one.
_UNDECODABLE: Final = re.compile("[\udc80-\udcff]")
_JSON_SPACE: Final = " \t\r\n"


@attrs.frozen
class Row:
    """One product of the feed as JSON text to send, or why it cannot be sent."""

    line: int
    product: bytes | None
    problem: str | None = None
    field: str | None = None  # the field the problem is with, when it is one field's

    @property
    def where(self) -> str:
        return f"line {self.line} {self.field}" if self.field else f"line {self.line}"


def feed_format(path: Path, chosen: str | None) -> str | None:
    """The format --format names, else the one the suffix names; None when neither does."""
    return chosen or FORMATS.get(path.suffix.lower())


def rows(stream: TextIO, kind: str) -> Iterator[Row]:
    return _csv_rows(stream) if kind == "csv" else _ndjson_rows(stream)


def _ndjson_rows(stream: TextIO) -> Iterator[Row]:
    for number, line in enumerate(stream, start=1):
        text = line.strip(_JSON_SPACE)
        if not text:
            continue
        if _UNDECODABLE.search(text):
            yield Row(number, None, "not valid UTF-8")
            continue
        try:
            body = parse_json(text, LINE_DEPTH)
        except Problem as problem:
            yield _refused(number, problem)
            continue
        if isinstance(body, dict):
            # The line itself is sent, so the API reads what the file says (1e1, 5.0) by its
            # own rules, not what a decoder here made of it.
            yield Row(number, text.encode())
        else:
            yield Row(number, None, "not a JSON object")


def _refused(number: int, problem: Problem) -> Row:
    if problem.errors:
        error = problem.errors[0]
        return Row(number, None, error["message"], error["field"])
    if problem.slug == "malformed-json":
        return Row(number, None, "not valid JSON")
    return Row(number, None, problem.detail)


def _csv_rows(stream: TextIO) -> Iterator[Row]:
    lines = _Lines(stream)
    reader = csv.DictReader(lines)
    try:
        header = reader.fieldnames or ()
    except csv.Error as error:
        yield Row(1, None, f"the header cannot be read: {error}")
        return
    missing = set(CSV_COLUMNS) - {"description"} - set(header)
    if missing or _UNDECODABLE.search("".join(header)):
        problem = f"the header lacks {', '.join(sorted(missing))}" if missing else "not UTF-8"
        yield Row(1, None, problem)
        return
    while True:
        lines.record_starts()
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Row(lines.number, None, str(error))
            lines.skip_open_record()
            continue
        yield _csv_row(lines.number, record)


def _csv_row(number: int, record: dict[str | None, str | None]) -> Row:
    cells = {k: v for k, v in record.items() if k is not None}
    if any(_UNDECODABLE.search(v) for v in cells.values() if v is not None):
        return Row(number, None, "not valid UTF-8")
    if cells.get("description") == "":
        cells["description"] = None  # CSV cannot tell an empty text from none
    parts = [orjson.dumps(name) + b":" + _csv_value(name, v) for name, v in cells.items()]
    return Row(number, b"{" + b",".join(parts) + b"}")


def _csv_value(name: str, cell: str | None) -> bytes:
    """A quantity written as a JSON number goes as that number, as an NDJSON line would send
    it; anything else (٣, ², "3 units") goes as text, for the API to refuse."""
    if name == "quantity" and cell is not None:
        try:
            number = parse_json(cell)
        except Problem:
            number = None
        if isinstance(number, int | Decimal) and not isinstance(number, bool):
            return cell.strip(_JSON_SPACE).encode()
    return orjson.dumps(cell)


class _Lines:
    """The CSV reader's lines, counted, and kept since its record began: after a record it
    could not read (a field over the csv module's limit), the lines still inside an open quote
    are skipped, so that no text from within a field is read as a product."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._record: list[str] = []
        self.number = 0  # of the file's last line read: the csv reader's count skips none

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = next(self._stream)
        self.number += 1
        self._record.append(line)
        return line

    def record_starts(self) -> None:
        self._record.clear()

    def skip_open_record(self) -> None:
        quoted = _ends_in_quote("".join(self._record))
        for line in self._stream if quoted else ():
            self.number += 1
            quoted = _ends_in_quote(line, quoted)
            if not quoted:
                break
        self._record.clear()


def _ends_in_quote(text: str, quoted: bool = False) -> bool:
    """Whether text leaves a quoted field open, read as the csv module's default dialect
    reads it: a quote opens a field only at its start, and "" inside one is a quote."""
    at_start = not quoted
    after_quote = False
    for char in text:
        if quoted:
            if char == '"':
                quoted, after_quote = False, True
            continue
        if char == '"' and (at_start or after_quote):
            quoted, after_quote = True, False  # a field's opening quote, or "" inside one
            continue
        after_quote = False
        at_start = char in ",\r\n"
    return quoted
