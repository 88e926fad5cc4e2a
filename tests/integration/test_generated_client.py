"""A client generated from the served /openapi.json by openapi-python-client drives the API."""

import importlib
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.integration.server import CME, running_cme

API_KEY = "generated-client-key-0123456789"
JWT = {"JWT_SECRET": "generated-client-jwt-secret-0123456789abcdef"}
GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))
PACKAGE = "cme_generated_client"
# Where the generator puts an operation (its tag's folder) or a model.
PREFIXES = ("api.products.", "api.stock.", "api.reservations.", "api.operations.", "models.", "")


class Generated:
    """The generated package's modules, imported by name."""

    def __init__(self, package: str) -> None:
        self.package = package

    def __getattr__(self, name: str) -> ModuleType:
        for prefix in PREFIXES:
            try:
                return importlib.import_module(f"{self.package}.{prefix}{name}")
            except ModuleNotFoundError:
                continue
        raise AttributeError(name)


@pytest.fixture
def served(empty_postgres_url: str, tmp_path: Path) -> Iterator[str]:
    env = {"DATABASE_URL": empty_postgres_url, "API_KEY": API_KEY, **JWT}
    with running_cme(env, tmp_path, tmp_path / "cme.log") as (base_url, _):
        yield base_url


@pytest.fixture
def gen(served: str, tmp_path: Path) -> Iterator[Generated]:
    with urllib.request.urlopen(f"{served}/openapi.json", timeout=5) as response:
        (tmp_path / "openapi.json").write_bytes(response.read())
    out = tmp_path / "client" / PACKAGE
    # ruff on PATH: the generator formats its output with it (and warns without it).
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    generated = subprocess.run(
        [GENERATOR, "generate", "--path", "openapi.json", "--meta", "none", "--output-path", out],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout
    sys.path.insert(0, str(out.parent))
    try:
        yield Generated(PACKAGE)
    finally:
        sys.path.remove(str(out.parent))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def client(gen: Generated, base_url: str, token: str = API_KEY, header: str = "X-API-Key") -> Any:
    prefix = "Bearer" if header == "Authorization" else ""
    return gen.client.AuthenticatedClient(
        base_url, token=token, prefix=prefix, auth_header_name=header, timeout=10
    )


def lamp(gen: Generated, sku: str = "LAMP-1", **fields: Any) -> Any:
    values = {"sku": sku, "name": "Desk lamp", "price": "19.99", "quantity": 4, **fields}
    return gen.product_input.ProductInput(**values)


def problem(gen: Generated, response: Any, status: int) -> Any:
    assert response.status_code == status, response.content
    parsed = response.parsed
    if parsed is None:  # a status this operation does not document: parse it by hand
        parsed = gen.problem.Problem.from_dict(json.loads(response.content))
    assert isinstance(parsed, gen.problem.Problem), response.content
    assert parsed.status == status
    assert parsed.type_.startswith("urn:cme:problem:")
    return parsed


def test_create_get_with_etag_and_304_put_with_if_match_patch_and_delete(
    gen: Generated, served: str
) -> None:
    api = client(gen, served)
    created = gen.create_product.sync_detailed(client=api, body=lamp(gen))
    assert created.status_code == 201
    product = created.parsed
    assert isinstance(product, gen.product.Product)
    assert (product.price, product.version) == ("19.99", 1)
    assert created.headers["etag"] == '"v1"'

    got = gen.get_product.sync_detailed(str(product.id), client=api)
    assert got.status_code == 200
    assert got.parsed.to_dict() == product.to_dict()
    unchanged = gen.get_product.sync_detailed(str(product.id), client=api, if_none_match='"v1"')
    assert unchanged.status_code == 304

    replaced = gen.replace_product.sync_detailed(
        str(product.id), client=api, body=lamp(gen, quantity=9, price=17.5), if_match='"v1"'
    )
    assert replaced.status_code == 200
    assert (replaced.parsed.quantity, replaced.parsed.price, replaced.parsed.version) == (
        9,
        "17.50",
        2,
    )
    stale = gen.replace_product.sync_detailed(
        str(product.id), client=api, body=lamp(gen), if_match='"v1"'
    )
    problem(gen, stale, 412)

    patch = gen.product_patch.ProductPatch(quantity=10, description=None)
    patched = gen.patch_product.sync_detailed(
        str(product.id), client=api, body=patch, if_match='"v2"'
    )
    assert patched.status_code == 200, patched.content
    assert (patched.parsed.quantity, patched.parsed.description) == (10, None)

    deleted = gen.delete_product.sync_detailed(str(product.id), client=api)
    assert deleted.status_code == 204
    problem(gen, gen.get_product.sync_detailed(str(product.id), client=api), 404)


def test_listing_follows_next_cursor_through_every_page(gen: Generated, served: str) -> None:
    api = client(gen, served)
    for n in range(5):
        created = gen.create_product.sync_detailed(client=api, body=lamp(gen, f"SKU-{n}"))
        assert created.status_code == 201
    seen: list[str] = []
    cursor: Any = gen.types.UNSET
    by_name = gen.list_products_sort.ListProductsSort.NAME
    while True:
        page = gen.list_products.sync(client=api, limit=2, sort=by_name, cursor=cursor)
        assert isinstance(page, gen.product_page.ProductPage)
        seen += [p.sku for p in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == [f"SKU-{n}" for n in range(5)]
    assert len(seen) == 5


def test_each_error_status_parses_as_a_problem(gen: Generated, served: str) -> None:
    api = client(gen, served)
    assert gen.create_product.sync_detailed(client=api, body=lamp(gen)).status_code == 201
    forged = gen.list_products.sync_detailed(client=api, cursor="not-a-cursor")
    problem(gen, forged, 400)
    anonymous = client(gen, served, token="wrong-key-0123456789abcdef")
    problem(gen, gen.create_product.sync_detailed(client=anonymous, body=lamp(gen, "X")), 401)
    reader_token = subprocess.run(
        [CME, "token", "--subject", "reader", "--scope", "products:read"],
        env={"PATH": "/usr/bin:/bin", **JWT},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    reader = client(gen, served, token=reader_token, header="Authorization")
    problem(gen, gen.create_product.sync_detailed(client=reader, body=lamp(gen, "Y")), 403)
    unknown = "01a235a8-5a47-7d2b-aea0-b94af8dd911e"
    problem(gen, gen.get_product.sync_detailed(unknown, client=api), 404)
    problem(gen, gen.create_product.sync_detailed(client=api, body=lamp(gen)), 409)
    huge = lamp(gen, "BIG", description="x" * 70_000)
    problem(gen, gen.create_product.sync_detailed(client=api, body=huge), 413)
    problem(gen, gen.list_products.sync_detailed(client=api, q="a" * 3000), 414)
    invalid = gen.create_product.sync_detailed(client=api, body=lamp(gen, "Z", price="1.234"))
    assert problem(gen, invalid, 422).errors[0].field == "price"
    big_head = client(gen, served).with_headers({"X-Padding": "a" * 20_000})
    too_large = problem(gen, gen.list_products.sync_detailed(client=big_head), 431)
    assert too_large.instance is gen.types.UNSET

    # No operation documents these two; the generated Problem model still reads them.
    raw = api.get_httpx_client()
    wrong_type = raw.post("/products", content=b"{}", headers={"Content-Type": "text/plain"})
    assert gen.problem.Problem.from_dict(wrong_type.json()).status == 415
    not_allowed = raw.post("/health")
    assert gen.problem.Problem.from_dict(not_allowed.json()).status == 405


def test_a_cart_is_held_extended_confirmed_and_refused_through_the_client(
    gen: Generated, served: str
) -> None:
    api = client(gen, served)
    created = gen.create_product.sync_detailed(client=api, body=lamp(gen))
    assert created.status_code == 201
    product = created.parsed
    assert (product.quantity, product.available) == (4, 4)

    line = gen.reservation_line.ReservationLine
    cart = gen.reservation_request.ReservationRequest(
        lines=[line(product_id=product.id, quantity=3)], reference="cart-42"
    )
    reserve = gen.create_reservation.sync_detailed
    held = reserve(client=api, body=cart, idempotency_key="cart-42")
    assert held.status_code == 201, held.content
    reservation = held.parsed
    assert isinstance(reservation, gen.reservation.Reservation)
    assert reservation.status == gen.reservation_status.ReservationStatus.HELD
    assert held.headers["location"] == f"/reservations/{reservation.id}"
    replayed = reserve(client=api, body=cart, idempotency_key="cart-42")
    assert (replayed.parsed.id, replayed.headers["idempotent-replayed"]) == (reservation.id, "true")
    got = gen.get_product.sync(str(product.id), client=api)
    assert (got.quantity, got.available) == (4, 1)

    more = gen.reservation_request.ReservationRequest(lines=[line(product.id, quantity=2)])
    short = reserve(client=api, body=more)
    shortage = problem(gen, short, 409).shortages[0]
    assert (shortage.requested, shortage.available) == (2, 1)
    sale = gen.stock_adjustment_input.StockAdjustmentInput(delta=-2, reason="sale")
    refused = gen.adjust_stock.sync_detailed(str(product.id), client=api, body=sale)
    assert problem(gen, refused, 409).available == 1

    rid = str(reservation.id)
    extended = gen.extend_reservation.sync_detailed(
        rid, client=api, body=gen.extension.Extension(ttl_seconds=60)
    )
    assert extended.status_code == 200, extended.content
    assert extended.parsed.expires_at <= reservation.expires_at
    confirmed = gen.confirm_reservation.sync_detailed(rid, client=api)
    assert confirmed.parsed.status == gen.reservation_status.ReservationStatus.CONFIRMED
    assert gen.confirm_reservation.sync_detailed(rid, client=api).status_code == 200
    got = gen.get_product.sync(str(product.id), client=api)
    assert (got.quantity, got.available) == (1, 1)
    ended = problem(gen, gen.release_reservation.sync_detailed(rid, client=api), 409)
    assert ended.type_ == "urn:cme:problem:reservation-ended"
    problem(gen, gen.get_reservation.sync_detailed(str(product.id), client=api), 404)


def test_an_unreachable_database_is_a_503_problem_through_the_client(
    gen: Generated, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "API_KEY": API_KEY}
    with running_cme(env, tmp_path, tmp_path / "down.log") as (base_url, _):
        api = client(gen, base_url)
        problem(gen, gen.db_check.sync_detailed(client=api), 503)
        problem(gen, gen.list_products.sync_detailed(client=api), 503)
