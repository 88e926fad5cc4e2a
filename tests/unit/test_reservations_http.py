"""Reservations over HTTP on the in-memory adapter, on a clock the tests move."""

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from cme_adapters.system import Uuid7Generator
from cme_domain.errors import ReservationExpired, WriteContention
from cme_domain.principal import WRITE_SCOPE, Principal
from cme_domain.reservation import ReservationStatus
from cme_domain.reservation_use_cases import (
    ConfirmReservation,
    ExtendReservation,
    SweepReservations,
)
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.settings import Settings
from tests.unit.conftest import API_KEY
from tests.unit.strategies import FakeClock

LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.99", "quantity": 5}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> InMemoryDatabase:
    return InMemoryDatabase(clock=clock)


@pytest.fixture
def shop(store: InMemoryDatabase, clock: FakeClock) -> Iterator[TestClient]:
    container = Container(settings=Settings(database_url="sqlite://", api_keys=(API_KEY,)))
    container.database.override(providers.Object(store))
    container.clock.override(providers.Object(clock))
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = API_KEY
        yield client


def product(shop: TestClient, sku: str = "LAMP-1", quantity: int = 5) -> str:
    response = shop.post("/products", json={**LAMP, "sku": sku, "quantity": quantity})
    assert response.status_code == 201, response.text
    product_id: str = response.json()["id"]
    return product_id


def reserve(shop: TestClient, *lines: tuple[str, int], **fields: Any) -> Any:
    body = {"lines": [{"product_id": p, "quantity": q} for p, q in lines], **fields}
    return shop.post("/reservations", json=body)


def held(shop: TestClient, *lines: tuple[str, int], **fields: Any) -> dict[str, Any]:
    response = reserve(shop, *lines, **fields)
    assert response.status_code == 201, response.text
    reservation: dict[str, Any] = response.json()
    return reservation


def stock(shop: TestClient, product_id: str) -> tuple[int, int]:
    body = shop.get(f"/products/{product_id}").json()
    return body["quantity"], body["available"]


def test_a_hold_takes_from_available_and_leaves_the_quantity_on_hand(
    shop: TestClient, clock: FakeClock
) -> None:
    lamp = product(shop)
    response = reserve(shop, (lamp, 2), reference="cart-42")
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/reservations/{body['id']}"
    assert body["status"] == "held"
    assert body["lines"] == [{"product_id": lamp, "quantity": 2}]
    assert body["reference"] == "cart-42"
    expected = (clock.now() + timedelta(seconds=900)).isoformat().replace("+00:00", "Z")
    assert body["expires_at"] == expected
    assert stock(shop, lamp) == (5, 3)
    assert shop.get("/products").json()["items"][0]["available"] == 3
    assert shop.get(f"/reservations/{body['id']}").json() == body


def test_all_lines_are_held_or_none_and_the_409_names_each_short_product(
    shop: TestClient,
) -> None:
    lamp, desk, chair = product(shop), product(shop, "DESK", 1), product(shop, "CHAIR", 0)
    response = reserve(shop, (lamp, 2), (desk, 3), (chair, 1))
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"] == "urn:cme:problem:insufficient-stock"
    assert problem["shortages"] == [
        {"product_id": desk, "requested": 3, "available": 1},
        {"product_id": chair, "requested": 1, "available": 0},
    ]
    assert stock(shop, lamp) == (5, 5)
    assert stock(shop, desk) == (1, 1)


def test_a_new_hold_only_takes_what_earlier_holds_left(shop: TestClient) -> None:
    lamp = product(shop)
    held(shop, (lamp, 4))
    assert reserve(shop, (lamp, 2)).json()["shortages"][0]["available"] == 1
    held(shop, (lamp, 1))
    assert stock(shop, lamp) == (5, 0)


def test_an_unknown_product_is_a_422_naming_its_line(shop: TestClient) -> None:
    lamp = product(shop)
    response = reserve(shop, (lamp, 1), (str(uuid4()), 1))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "lines[1].product_id", "message": "no product has this id"}
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lines": []}, "lines"),
        ({"lines": "x"}, "lines"),
        ({}, "lines"),
        ({"lines": [{"product_id": "P", "quantity": 1}] * 101}, "lines"),
        ({"lines": [7]}, "lines[0]"),
        ({"lines": [{"product_id": "nope", "quantity": 1}]}, "lines[0].product_id"),
        ({"lines": [{"quantity": 1}]}, "lines[0].product_id"),
        ({"lines": [{"product_id": "P", "quantity": 0}]}, "lines[0].quantity"),
        ({"lines": [{"product_id": "P", "quantity": "2"}]}, "lines[0].quantity"),
        ({"lines": [{"product_id": "P", "quantity": 2.5}]}, "lines[0].quantity"),
        ({"lines": [{"product_id": "P", "quantity": True}]}, "lines[0].quantity"),
        ({"lines": [{"product_id": "P", "quantity": 1e300}]}, "lines[0].quantity"),
        ({"lines": [{"product_id": "P"}]}, "lines[0].quantity"),
        ({"lines": [{"product_id": "P", "quantity": 1, "price": 1}]}, "lines[0].price"),
        (
            {"lines": [{"product_id": "P", "quantity": 1}, {"product_id": "P", "quantity": 2}]},
            "lines[1].product_id",
        ),
        ({"lines": [{"product_id": "P", "quantity": 1}], "ttl_seconds": 0}, "ttl_seconds"),
        ({"lines": [{"product_id": "P", "quantity": 1}], "ttl_seconds": 86401}, "ttl_seconds"),
        ({"lines": [{"product_id": "P", "quantity": 1}], "ttl_seconds": "60"}, "ttl_seconds"),
        ({"lines": [{"product_id": "P", "quantity": 1}], "reference": "x" * 201}, "reference"),
        ({"lines": [{"product_id": "P", "quantity": 1}], "reference": "a\nb"}, "reference"),
        ({"lines": [{"product_id": "P", "quantity": 1}], "cart": 1}, "cart"),
    ],
)
def test_every_invalid_field_is_a_422_naming_it(
    shop: TestClient, body: dict[str, Any], field: str
) -> None:
    lamp = product(shop)
    response = shop.post("/reservations", json=_naming(body, lamp))
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert stock(shop, lamp) == (5, 5)


def _naming(value: Any, product_id: str) -> Any:
    """The case with the placeholder "P" replaced by a real product's id."""
    if value == "P":
        return product_id
    if isinstance(value, dict):
        return {k: _naming(v, product_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_naming(v, product_id) for v in value]
    return value


def test_nothing_takes_held_stock(shop: TestClient) -> None:
    lamp = product(shop)
    held(shop, (lamp, 3))
    sale = shop.post(f"/products/{lamp}/stock-adjustments", json={"delta": -3, "reason": "sale"})
    assert sale.status_code == 409
    assert sale.json()["available"] == 2
    put = shop.put(f"/products/{lamp}", json={**LAMP, "quantity": 2})
    assert put.status_code == 409
    assert put.json()["type"] == "urn:cme:problem:insufficient-stock"
    patch = shop.patch(f"/products/{lamp}", json={"quantity": 1})
    assert patch.status_code == 409
    batch = shop.post(
        "/products/batch", json={"mode": "upsert", "products": [{**LAMP, "quantity": 2}]}
    )
    assert batch.status_code == 409
    assert "products[0]" in batch.json()["detail"]
    assert shop.delete(f"/products/{lamp}").status_code == 409
    assert stock(shop, lamp) == (5, 2)
    # What is not held can go; and stock can always come in.
    assert (
        shop.post(
            f"/products/{lamp}/stock-adjustments", json={"delta": -2, "reason": "sale"}
        ).status_code
        == 201
    )
    assert shop.put(f"/products/{lamp}", json={**LAMP, "quantity": 4}).status_code == 200
    assert shop.patch(f"/products/{lamp}", json={"quantity": 3}).json()["available"] == 0
    assert (
        shop.post(
            f"/products/{lamp}/stock-adjustments", json={"delta": 1, "reason": "delivery"}
        ).status_code
        == 201
    )
    assert stock(shop, lamp) == (4, 1)


def test_confirm_takes_the_units_with_a_ledger_entry_each_once(shop: TestClient) -> None:
    lamp, desk = product(shop), product(shop, "DESK", 2)
    reservation = held(shop, (lamp, 2), (desk, 1))
    path = f"/reservations/{reservation['id']}"
    confirmed = shop.post(f"{path}/confirm")
    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "confirmed"
    assert stock(shop, lamp) == (3, 3)
    assert stock(shop, desk) == (1, 1)
    entry = shop.get(f"/products/{lamp}/stock-adjustments").json()["items"][0]
    assert (entry["delta"], entry["reason"], entry["reference"]) == (
        -2,
        "reservation",
        reservation["id"],
    )
    events = shop.get("/products/changes").json()["items"]
    assert [e["type"] for e in events][-2:] == ["product.stock_adjusted"] * 2
    again = shop.post(f"{path}/confirm")
    assert again.status_code == 200
    assert again.json()["status"] == "confirmed"
    assert stock(shop, lamp) == (3, 3)
    assert shop.post(f"{path}/release").status_code == 409
    assert shop.post(f"{path}/release").json()["type"] == "urn:cme:problem:reservation-ended"


def test_release_makes_the_stock_available_at_once_and_cannot_be_undone(
    shop: TestClient,
) -> None:
    lamp = product(shop)
    path = f"/reservations/{held(shop, (lamp, 5))['id']}"
    released = shop.post(f"{path}/release")
    assert (released.status_code, released.json()["status"]) == (200, "released")
    assert stock(shop, lamp) == (5, 5)
    assert shop.post(f"{path}/release").json()["status"] == "released"
    refused = shop.post(f"{path}/confirm")
    assert (refused.status_code, refused.json()["type"]) == (
        409,
        "urn:cme:problem:reservation-ended",
    )
    assert shop.post(f"{path}/extend", json={"ttl_seconds": 60}).status_code == 409
    assert stock(shop, lamp) == (5, 5)


def test_a_hold_stops_counting_at_expires_at_with_no_sweep(
    shop: TestClient, clock: FakeClock
) -> None:
    lamp = product(shop)
    path = f"/reservations/{held(shop, (lamp, 4), ttl_seconds=2)['id']}"
    clock.advance(timedelta(seconds=1, microseconds=999_999))
    assert stock(shop, lamp) == (5, 1)
    assert shop.get(path).json()["status"] == "held"
    clock.advance(timedelta(microseconds=1))
    assert stock(shop, lamp) == (5, 5)
    assert shop.get(path).json()["status"] == "expired"
    refused = shop.post(f"{path}/confirm")
    assert (refused.status_code, refused.json()["type"]) == (
        410,
        "urn:cme:problem:reservation-expired",
    )
    assert shop.post(f"{path}/extend", json={"ttl_seconds": 60}).status_code == 410
    assert shop.post(f"{path}/release").json()["status"] == "expired"
    assert stock(shop, lamp) == (5, 5)


def test_extend_moves_the_expiry_to_ttl_from_now(shop: TestClient, clock: FakeClock) -> None:
    lamp = product(shop)
    path = f"/reservations/{held(shop, (lamp, 4), ttl_seconds=10)['id']}"
    clock.advance(timedelta(seconds=8))
    extended = shop.post(f"{path}/extend", json={"ttl_seconds": 60})
    assert extended.status_code == 200, extended.text
    expected = (clock.now() + timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    assert extended.json()["expires_at"] == expected
    clock.advance(timedelta(seconds=30))
    assert stock(shop, lamp) == (5, 1)
    assert shop.post(f"{path}/confirm").json()["status"] == "confirmed"
    for body in ({}, {"ttl_seconds": 0}, {"ttl_seconds": 60, "x": 1}):
        assert shop.post(f"{path}/extend", json=body).status_code == 422


def test_an_idempotency_key_holds_a_retried_cart_once(shop: TestClient) -> None:
    lamp = product(shop)
    body = {"lines": [{"product_id": lamp, "quantity": 2}]}
    headers = {"Idempotency-Key": "cart-42-checkout"}
    first = shop.post("/reservations", json=body, headers=headers)
    second = shop.post("/reservations", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert stock(shop, lamp) == (5, 3)
    other = {"lines": [{"product_id": lamp, "quantity": 1}]}
    assert shop.post("/reservations", json=other, headers=headers).status_code == 422


def test_unknown_and_malformed_ids_are_404(shop: TestClient) -> None:
    for path in (f"/reservations/{uuid4()}", "/reservations/nope", "/reservations/1"):
        response = shop.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    assert shop.post(f"/reservations/{uuid4()}/confirm").status_code == 404


def test_writes_need_credentials(shop: TestClient) -> None:
    lamp = product(shop)
    del shop.headers["X-API-Key"]
    assert reserve(shop, (lamp, 1)).status_code == 401
    assert shop.post(f"/reservations/{uuid4()}/release").status_code == 401


def test_the_metrics_count_reservations_by_outcome(shop: TestClient) -> None:
    lamp = product(shop)
    first, second = held(shop, (lamp, 1)), held(shop, (lamp, 1))
    assert reserve(shop, (lamp, 9)).status_code == 409
    shop.post(f"/reservations/{first['id']}/confirm")
    shop.post(f"/reservations/{first['id']}/confirm")
    shop.post(f"/reservations/{second['id']}/release")
    text = shop.get("/metrics").text
    for outcome, count in (("held", 2), ("refused", 1), ("confirmed", 1), ("released", 1)):
        assert f'reservations_total{{outcome="{outcome}"}} {count}.0' in text
    assert 'reservations_total{outcome="expired"} 0.0' in text
    assert 'http_requests_total{method="POST",path="/reservations",status="201"}' in text


def test_the_sweep_marks_expired_holds_counts_them_and_prunes_old_ones(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock
) -> None:
    lamp = product(shop)
    gone = held(shop, (lamp, 1), ttl_seconds=5)
    kept = held(shop, (lamp, 2), ttl_seconds=600)
    sweep = SweepReservations(store.unit_of_work, clock, retention=timedelta(days=1))
    clock.advance(timedelta(seconds=5))
    swept = asyncio.run(sweep())
    assert (swept.expired, swept.pruned, swept.held_units) == (1, 0, 2)
    assert shop.get(f"/reservations/{gone['id']}").json()["status"] == "expired"
    assert asyncio.run(sweep()).expired == 0
    clock.advance(timedelta(days=1, seconds=1))
    swept = asyncio.run(sweep())
    assert (swept.expired, swept.pruned, swept.held_units) == (1, 1, 0)
    assert shop.get(f"/reservations/{gone['id']}").status_code == 404
    assert shop.get(f"/reservations/{kept['id']}").json()["status"] == "expired"


class Deadlocked:
    """Reservations whose first statement the database ends, as it does to break a deadlock."""

    async def get(self, *args: object, **kwargs: object) -> None:
        raise WriteContention("deadlock detected")


def test_a_step_the_database_ended_to_break_a_deadlock_is_run_again(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock
) -> None:
    lamp = product(shop)
    reservation = held(shop, (lamp, 2))
    ended = []

    def unit_of_work(*, atomic: bool = True) -> Any:
        uow = store.unit_of_work(atomic=atomic)
        if not ended:
            ended.append(True)
            uow.reservations = Deadlocked()  # type: ignore[assignment]
        return uow

    confirm = ConfirmReservation(unit_of_work, clock, Uuid7Generator())
    writer = Principal("shop", frozenset({WRITE_SCOPE}))
    confirmed, new = asyncio.run(confirm(writer, UUID(reservation["id"])))
    assert (confirmed.state, new, ended) == (ReservationStatus.CONFIRMED, True, [True])
    assert stock(shop, lamp) == (3, 3)


class SlowLocks:
    """Products whose locks take `wait` to get, as behind another transaction's."""

    def __init__(self, products: Any, clock: FakeClock, wait: timedelta) -> None:
        self._products, self._clock, self._wait = products, clock, wait

    async def lock(self, product_ids: Any) -> None:
        self._clock.advance(self._wait)
        await self._products.lock(product_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._products, name)


@pytest.mark.parametrize("step", ["confirm", "extend"])
def test_a_hold_that_expires_while_its_products_are_locked_is_expired_for_the_step(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock, step: str
) -> None:
    lamp = product(shop)
    reservation = UUID(held(shop, (lamp, 2), ttl_seconds=10)["id"])
    clock.advance(timedelta(seconds=9))

    def unit_of_work(*, atomic: bool = True) -> Any:
        uow = store.unit_of_work(atomic=atomic)
        uow.products = SlowLocks(uow.products, clock, timedelta(seconds=2))  # type: ignore[assignment]
        return uow

    writer = Principal("shop", frozenset({WRITE_SCOPE}))
    confirm = ConfirmReservation(unit_of_work, clock, Uuid7Generator())
    extend = ExtendReservation(unit_of_work, clock)
    steps = {
        "confirm": lambda: confirm(writer, reservation),
        "extend": lambda: extend(writer, reservation, timedelta(seconds=60)),
    }
    with pytest.raises(ReservationExpired):
        asyncio.run(steps[step]())
    assert stock(shop, lamp) == (5, 5)
