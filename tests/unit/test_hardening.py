"""Forged and odd input from issue 14's list: each gets its documented status, never a 500."""

import base64
import gzip
import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase, InMemoryProductRepository
from cme_domain.listing import Keyset, SortField, SortOrder
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.http.cursor import CursorCodec
from cme_entrypoints.settings import Settings
from tests.unit.conftest import API_KEY
from tests.unit.test_http_api import LAMP, UnreachableDatabase, assert_problem, create

SETTINGS = Settings(
    database_url="sqlite://", api_keys=(API_KEY,), cursor_secret="unit-test-cursor-secret"
)


@pytest.mark.parametrize("field", ["name", "description"])
@pytest.mark.parametrize("text", ["\ud800", "Desk \udfff lamp", "\udc00\ud800"])
def test_a_lone_surrogate_in_a_text_field_is_422_on_every_write(
    writer: TestClient, field: str, text: str
) -> None:
    body = orjson.dumps({**LAMP, field: "PLACEHOLDER"}).replace(b"PLACEHOLDER", _escaped(text))
    product = create(writer, sku="SURR-1")
    headers = {"Content-Type": "application/json"}
    for method, url, content in (
        ("POST", "/products", body),
        ("PUT", f"/products/{product['id']}", body),
        ("PATCH", f"/products/{product['id']}", b'{"%s": "%s"}' % (field.encode(), _escaped(text))),
    ):
        response = writer.request(method, url, content=content, headers=headers)
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["field"] == field
    assert writer.get(f"/products/{product['id']}").json()["version"] == 1


def test_a_lone_surrogate_in_a_field_name_is_422_not_a_500(writer: TestClient) -> None:
    body = b'{"sku": "S-1", "name": "n", "price": "1", "quantity": 1, "\\ud800": 1}'
    response = writer.post("/products", content=body, headers={"Content-Type": "application/json"})
    assert assert_problem(response, 422)["errors"] == [
        {
            "field": "(a field name)",
            "message": "must not contain a lone surrogate (U+D800 to U+DFFF)",
        }
    ]


def test_a_surrogate_pair_is_one_character_and_accepted(writer: TestClient) -> None:
    body = orjson.dumps({**LAMP, "name": "PLACEHOLDER"}).replace(
        b"PLACEHOLDER", b"lamp \\ud83d\\udca1"
    )
    response = writer.post("/products", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "lamp \U0001f4a1"


@pytest.mark.parametrize(
    "name", ["\u200b", "\u200b\u200d\u2060\ufeff", "\u3164", " \u00ad\t", "\u2800"]
)
def test_a_name_of_only_invisible_characters_is_blank(writer: TestClient, name: str) -> None:
    problem = assert_problem(writer.post("/products", json={**LAMP, "name": name}), 422)
    assert problem["errors"] == [
        {
            "field": "name",
            "message": "must not be blank (whitespace and invisible characters do not count)",
        }
    ]


@pytest.mark.parametrize(
    "tag", ['"v2147483648"', '"v9223372036854775808"', '"v99999999999999999999999"']
)
def test_an_if_match_version_past_the_columns_range_is_412_without_the_database(
    tag: str,
) -> None:
    # Any database call would answer 503: a 412 shows the header was judged before one.
    container = Container(settings=SETTINGS)
    container.database.override(providers.Object(UnreachableDatabase()))
    url = f"/products/{UUID(int=1)}"
    headers = {"If-Match": tag, "X-API-Key": API_KEY}
    with TestClient(create_app(container)) as client:
        for response in (
            client.put(url, json=LAMP, headers=headers),
            client.patch(url, json={"quantity": 1}, headers=headers),
            client.delete(url, headers=headers),
        ):
            assert assert_problem(response, 412)["type"] == "urn:cme:problem:version-mismatch"


@pytest.mark.parametrize("tag", ['W/"v1"', '"v01"', '"v+1"', '"v 1"', "v1", '"V1"', '""'])
def test_if_match_compares_strongly_and_only_our_exact_tag_matches(
    writer: TestClient, tag: str
) -> None:
    product = create(writer)
    url = f"/products/{product['id']}"
    assert_problem(writer.put(url, json=LAMP, headers={"If-Match": tag}), 412)
    assert_problem(writer.delete(url, headers={"If-Match": tag}), 412)
    assert writer.put(url, json=LAMP, headers={"If-Match": f'{tag}, "v1"'}).status_code == 200
    assert writer.delete(url, headers={"If-Match": '"v2"'}).status_code == 204


@pytest.mark.parametrize(
    "limit", ["\u0661\u0660", "\u00b2", "1_0", " 10", "+10", "10.0", "0x0a", "\u0663"]
)
def test_limit_takes_ascii_digits_only_with_the_documented_message(
    client: TestClient, limit: str
) -> None:
    problem = assert_problem(client.get("/products", params={"limit": limit}), 422)
    assert problem["errors"] == [{"field": "limit", "message": "must be an integer from 1 to 100"}]


def test_a_compressed_body_is_415_naming_the_accepted_encoding(writer: TestClient) -> None:
    body = gzip.compress(orjson.dumps(LAMP))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = writer.post("/products", content=body, headers=headers)
    assert assert_problem(response, 415)["type"] == "urn:cme:problem:unsupported-media-type"
    assert response.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_a_body_in_utf_16_or_32_is_refused(writer: TestClient, codec: str) -> None:
    body = orjson.dumps(LAMP).decode().encode(codec)
    response = writer.post("/products", content=body, headers={"Content-Type": "application/json"})
    # Bytes that are not UTF-8 are named as such; UTF-16 of ASCII is UTF-8 with NULs: not JSON.
    detail = assert_problem(response, 400)["detail"]
    assert detail.startswith(("the body is not valid UTF-8", "the body is not valid JSON"))
    declared = writer.post(
        "/products", content=body, headers={"Content-Type": f"application/json; charset={codec}"}
    )
    assert_problem(declared, 415)


def test_a_utf_8_charset_parameter_is_accepted(writer: TestClient) -> None:
    headers = {"Content-Type": 'application/json; charset="UTF-8"'}
    response = writer.post("/products", content=orjson.dumps(LAMP), headers=headers)
    assert response.status_code == 201, response.text


def test_ids_are_accepted_only_in_the_canonical_hyphenated_form(writer: TestClient) -> None:
    product_id = create(writer)["id"]
    hex_id = product_id.replace("-", "")
    for other_form in (
        f"{{{product_id}}}",
        f"urn:uuid:{product_id}",
        f"+{product_id}",
        hex_id,
        f" {product_id}",
        product_id.replace("-", "", 1),
    ):
        assert_problem(writer.get(f"/products/{other_form}"), 404)
    assert writer.get(f"/products/{product_id.upper()}").json()["id"] == product_id


def test_a_trailing_slash_is_404_and_never_redirects_to_the_host_header(client: TestClient) -> None:
    response = client.get("/products/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert_problem(response, 404)
    assert "location" not in response.headers


def test_patch_under_endless_contention_is_409_saying_to_retry(
    writer: TestClient, memory: InMemoryDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    product = create(writer)

    async def always_lose_the_race(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(InMemoryProductRepository, "replace", always_lose_the_race)
    response = writer.patch(f"/products/{product['id']}", json={"quantity": 9})
    problem = assert_problem(response, 409)
    assert problem["type"] == "urn:cme:problem:contention"
    assert "retry" in problem["detail"]
    assert product["id"] not in problem["detail"]
    assert response.headers["retry-after"] == "1"


def _escaped(text: str) -> bytes:
    """The JSON \\uXXXX escapes of each UTF-16 code unit, as a client that sends one would."""
    return "".join(f"\\u{ord(ch):04x}" for ch in text).encode()


def _signed_cursor(fields: Any) -> str:
    payload = orjson.dumps(fields)
    key = SETTINGS.cursor_key
    assert key is not None
    signature = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return ".".join(
        base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in (payload, signature)
    )


ID = "0" * 32
FORGED_CURSORS = [
    ("price", ["price", "asc", "NaN", ID]),
    ("price", ["price", "asc", "sNaN", ID]),
    ("price", ["price", "asc", "Infinity", ID]),
    ("price", ["price", "asc", "1e30", ID]),
    ("price", ["price", "asc", "-1.00", ID]),
    ("price", ["price", "asc", 1.5, ID]),
    ("created_at", ["created_at", "asc", "0001-01-01T00:00:00+00:00", ID]),
    ("created_at", ["created_at", "asc", "9999-12-31T23:59:59+00:00", ID]),
    ("created_at", ["created_at", "asc", "2026-01-01T00:00:00", ID]),
    ("created_at", ["created_at", "asc", "2026-01-01T00:00:00+05:00", ID]),
    ("created_at", ["created_at", "asc", 1767225600, ID]),
    ("created_at", ["created_at", "asc", "1767225600", ID]),
    ("name", ["name", "asc", "", ID]),
    ("name", ["name", "asc", "n" * 201, ID]),
    ("name", ["name", "asc", "a\x00b", ID]),
    ("name", ["name", "asc", 7, ID]),
    ("name", ["name", "asc", "lamp", 12345]),
    ("name", ["name", "asc", "lamp", "not-a-uuid"]),
    ("name", ["name", "asc", "lamp", "0" * 31 + "G"]),
    ("name", ["name", "asc", "lamp", "{" + "0" * 30 + "}"]),
    ("name", ["name", "asc", "lamp", ID, "extra"]),
    ("name", {"sort": "name"}),
    ("name", ["price", "asc", "1.00", ID]),
    ("name", [None, None, None, None]),
]


@pytest.fixture
def keyed(memory: InMemoryDatabase) -> Iterator[TestClient]:
    """The app with a CURSOR_SECRET the test knows, so it can sign cursors of its own."""
    container = Container(settings=SETTINGS)
    container.database.override(providers.Object(memory))
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(("sort", "fields"), FORGED_CURSORS)
def test_a_signed_cursor_with_an_impossible_value_is_400(
    keyed: TestClient, sort: str, fields: Any
) -> None:
    cursor = _signed_cursor(fields)
    problem = assert_problem(keyed.get("/products", params={"sort": sort, "cursor": cursor}), 400)
    assert problem["type"] == "urn:cme:problem:bad-cursor"


def test_a_well_formed_cursor_signed_with_the_key_is_accepted(keyed: TestClient) -> None:
    ok = _signed_cursor(["name", "asc", "lamp", ID])
    assert keyed.get("/products", params={"sort": "name", "cursor": ok}).status_code == 200


async def _no_database_key() -> bytes:
    raise AssertionError("a codec given a key needs no other")


def test_a_cursor_signed_with_another_key_says_so() -> None:
    keyset = Keyset(datetime(2026, 1, 2, tzinfo=UTC), UUID(int=5))
    ours = CursorCodec(b"k" * 32, _no_database_key)
    cursor = ours.encode(keyset, SortField.CREATED_AT, SortOrder.ASC)
    assert ours.decode(cursor, SortField.CREATED_AT, SortOrder.ASC) == keyset
    with pytest.raises(ValueError, match="not issued by this service"):
        CursorCodec(b"j" * 32, _no_database_key).decode(cursor, SortField.CREATED_AT, SortOrder.ASC)


def test_a_wrong_body_is_reported_before_a_wrong_if_match(writer: TestClient) -> None:
    url = f"/products/{create(writer)['id']}"
    headers = {"If-Match": '"S/"'}
    assert_problem(writer.patch(url, json={"sku": "bad*"}, headers=headers), 422)
    assert_problem(writer.put(url, json={**LAMP, "sku": "bad*"}, headers=headers), 422)
    assert_problem(writer.patch(url, json={"sku": "GOOD"}, headers=headers), 412)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "the body is empty: send a JSON object"),
        (b" \r\n", "the body is empty: send a JSON object"),
        (
            b'{\n  "sku": "A-1",\n  "name": "Lamp"\n  "price": "1.00"}',
            "the body is not valid JSON: Expecting ',' delimiter at line 4, column 3",
        ),
        (b'{"price": NaN}', "the body is not valid JSON: NaN is not JSON"),
        (b'{"name": "caf\xc3"}', "the body is not valid UTF-8 (byte 14)"),
    ],
)
def test_a_body_that_is_not_json_says_where_it_breaks(
    writer: TestClient, body: bytes, detail: str
) -> None:
    response = writer.post("/products", content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 400)
    assert problem["type"] == "urn:cme:problem:malformed-json"
    assert problem["detail"] == detail


def test_json_nested_past_the_interpreter_recursion_limit_is_too_deep(writer: TestClient) -> None:
    body = b"[" * 30_000 + b"]" * 30_000
    response = writer.post("/products", content=body, headers={"Content-Type": "application/json"})
    assert assert_problem(response, 400)["type"] == "urn:cme:problem:too-deep"
