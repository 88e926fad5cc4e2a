"""`cme import`'s reading of a feed: every line it cannot send is refused by number, the rest
go as the file wrote them, in batches the batch route accepts; and what stops a run at once."""

import json
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cme_entrypoints.cli import main
from cme_entrypoints.http.stock import BATCH_BODY_BYTES
from cme_entrypoints.import_client import ATTEMPTS, BatchClient
from cme_entrypoints.import_command import ENVELOPE_BYTES, Tally, batches, printable
from cme_entrypoints.import_feed import Row, rows

GOOD = '{"sku":"A-1","name":"Lamp","price":"1.00","quantity":1}'
HEADER = "sku,name,description,price,quantity\n"


def read(data: bytes, kind: str) -> list[Row]:
    """Rows of a feed read from a file, opened as `cme import` opens it."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"feed.{kind}"
        path.write_bytes(data)
        with path.open(encoding="utf-8", errors="surrogateescape", newline="") as stream:
            return list(rows(stream, kind))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (rb'{"sku":"S-1","name":"\ud800","price":"1.00","quantity":1}', "must not contain a lone"),
        (b'{"sku":"S-1","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper than 30"),
        (b'{"sku":"S-1","x":' + b"[" * 31 + b"]" * 31 + b"}", "nested deeper than 30 levels"),
        (b'{"sku":"S-1","name":"\xff","price":"1.00","quantity":1}', "not valid UTF-8"),
        (b'{"sku":"S-1","price":NaN}', "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
    ],
    ids=["lone-surrogate", "100000-deep", "too-deep-for-a-batch", "0xff", "NaN", "array"],
)
def test_an_ndjson_line_that_cannot_be_sent_is_refused_by_number_and_the_next_is_read(
    line: bytes, problem: str
) -> None:
    feed = read(GOOD.encode() + b"\n" + line + b"\n" + GOOD.encode() + b"\n", "ndjson")
    assert [row.line for row in feed] == [1, 2, 3]
    assert feed[1].product is None
    assert problem in f"{feed[1].where}: {feed[1].problem}"
    assert feed[1].where.startswith("line 2")
    assert feed[0].product == feed[2].product == GOOD.encode()


def test_an_ndjson_line_is_sent_as_written_so_the_api_reads_its_numbers() -> None:
    line = '{"sku":"E-1","name":"n","price":1e1,"quantity":5.0,"big":123456789012345678901234}'
    (row,) = read(line.encode() + b"\r\n", "ndjson")
    assert row.product == line.encode()


@pytest.mark.parametrize("cell", ["²", "\u0663", "\uff15", "3 units", "0x10", "true", ""])
def test_a_csv_quantity_that_is_not_a_json_number_goes_as_text_for_the_api_to_refuse(
    cell: str,
) -> None:
    (row,) = read(f"{HEADER}Q-1,n,,1.00,{cell}\n".encode(), "csv")
    assert row.product is not None
    assert orjson.loads(row.product)["quantity"] == cell


@pytest.mark.parametrize(("cell", "sent"), [("5", b"5"), ("5.0", b"5.0"), (" 7 ", b"7")])
def test_a_csv_quantity_written_as_a_json_number_goes_as_that_number(
    cell: str, sent: bytes
) -> None:
    (row,) = read(f"{HEADER}Q-1,n,,1.00,{cell}\n".encode(), "csv")
    assert row.product is not None
    assert row.product.endswith(b'"quantity":' + sent + b"}")


def test_a_csv_field_over_the_csv_limit_is_refused_and_no_text_inside_it_is_read_as_a_row() -> None:
    inside = 'Q-9,inside the field,,1.00,1\nmore ""quoted"" text\n'
    data = (
        f'{HEADER}C-1,a,,1.00,1\nC-2,b,"{"x" * 140_000}\n{inside}",1.00,1\n'
        f"C-3,c,,1.00,3\nC-4,{'y' * 140_000},,1.00,1\nC-5,e,,1.00,2\n"
    )
    feed = read(data.encode(), "csv")
    assert [(row.line, row.problem) for row in feed] == [
        (2, None),
        (3, "field larger than field limit (131072)"),
        (7, None),
        (8, "field larger than field limit (131072)"),
        (9, None),
    ]
    assert [orjson.loads(row.product)["sku"] for row in feed if row.product] == [
        "C-1",
        "C-3",
        "C-5",
    ]


def test_a_csv_row_with_a_byte_that_is_not_utf8_is_refused_and_the_next_is_read() -> None:
    feed = read(HEADER.encode() + b"C-1,\xff,,1.00,1\nC-2,b,,1.00,1\n", "csv")
    assert [(row.line, row.problem) for row in feed] == [(2, "not valid UTF-8"), (3, None)]


def japanese(count: int) -> Iterator[Row]:
    for n in range(count):
        body = {"sku": f"J-{n}", "name": "商品", "description": "説明" * 2000, "price": "1.00"}
        yield Row(n + 1, json.dumps(body, ensure_ascii=False).encode())


def test_batches_stay_under_the_batch_routes_byte_limit_as_well_as_the_count() -> None:
    sent = list(batches(japanese(500), 500, BATCH_BODY_BYTES))
    assert len(sent) > 1
    assert sum(len(batch) for batch in sent) == 500
    for batch in sent:
        body = ENVELOPE_BYTES + sum(len(row.product or b"") + 1 for row in batch)
        assert body <= BATCH_BODY_BYTES


def test_a_product_larger_than_any_batch_is_refused_on_its_own_line() -> None:
    feed = [Row(1, b"x" * 100), Row(2, b"y" * 1000), Row(3, b"z" * 100)]
    sent = list(batches(iter(feed), 10, 500))
    assert [[row.line for row in batch] for batch in sent] == [[1, 2, 3]]
    assert sent[0][1].product is None
    assert sent[0][1].problem == "larger than a batch's 500 bytes"


def test_control_characters_are_escaped_in_what_the_command_prints() -> None:
    forged = "x\x1b[2J\rPWNED: unknown field\n\x9b\u2028\u202e ok é 日本"
    assert printable(forged) == "x\\x1b[2J\\rPWNED: unknown field\\n\\x9b\\u2028\\u202e ok é 日本"


def test_nothing_is_read_past_the_header_when_it_lacks_a_column() -> None:
    assert read(b"sku,name\nA,b\n", "csv") == [Row(1, None, "the header lacks price, quantity")]


def test_a_file_of_unknown_suffix_is_refused_naming_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = tmp_path / "products.txt"
    feed.write_text(GOOD + "\n")
    command = ["import", str(feed), "--url", "http://127.0.0.1:1", "--api-key", "k" * 20]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "name it with --format ndjson or --format csv" in error


def test_no_server_stops_the_run_at_the_first_batch_with_one_line_and_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    feed = tmp_path / "products.ndjson"
    feed.write_text((GOOD + "\n") * 3)
    url = f"http://127.0.0.1:{port}"
    command = ["import", str(feed), "--url", url, "--api-key", "k" * 20, "--batch-size", "1"]
    assert main(command) == 1
    out, error = capsys.readouterr()
    assert error.splitlines() == [
        f"cme import: stopped at batch 1: cannot connect to {url}: connection refused;"
        " is the service running there, and is --url right?"
    ]
    assert out.startswith("cme import: 0 products in 0 batches, 0.0 s: 0 created,")


def test_a_batch_without_an_answer_is_retried_aloud_and_counted_apart_from_rejections() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def hang_up() -> None:
            for _ in range(ATTEMPTS):
                connection, _ = server.accept()
                connection.close()

        closer = threading.Thread(target=hang_up)
        closer.start()
        said: list[str] = []
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        client = BatchClient(url, "k" * 20, "upsert", said.append, sleep=lambda _: None)
        status, _, answer = client.send([GOOD.encode()])
        closer.join()
    assert status == 0
    assert "no answer from" in answer["detail"]
    assert len(said) == ATTEMPTS - 1
    assert said[0].startswith("no answer (")
    assert said[0].endswith("; sending it again in 1 s (2 of 3)")
    tally = Tally(batches=1, unanswered_batches=1, unanswered=500)
    assert tally.summary(1.0) == (
        "500 products in 1 batch, 1.0 s: 0 created, 0 replaced, 0 already imported,"
        " 0 rejected (0 batches), 500 not answered (1 batch: network failures)"
    )
