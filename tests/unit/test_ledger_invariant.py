"""Whatever sequence of writes, every product's quantity is the sum of its ledger's deltas,
and what reservations hold is never more than the quantity."""

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase

SKUS = ("A", "B", "C")
MERGE = {"Content-Type": "application/merge-patch+json"}

operation = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(SKUS), st.integers(0, 20)),
    st.tuples(st.just("adjust"), st.sampled_from(SKUS), st.integers(-15, 15).filter(bool)),
    st.tuples(st.just("put"), st.sampled_from(SKUS), st.integers(0, 20)),
    st.tuples(st.just("patch"), st.sampled_from(SKUS), st.integers(0, 20)),
    st.tuples(st.just("batch"), st.sampled_from(SKUS), st.integers(0, 20)),
    st.tuples(st.just("delete"), st.sampled_from(SKUS), st.just(0)),
    st.tuples(st.just("reserve"), st.sampled_from(SKUS), st.integers(1, 10)),
    st.tuples(st.just("confirm"), st.sampled_from(SKUS), st.integers(0, 5)),
    st.tuples(st.just("release"), st.sampled_from(SKUS), st.integers(0, 5)),
)


def body(sku: str, quantity: int) -> dict[str, Any]:
    return {"sku": sku, "name": f"Item {sku}", "price": "1.00", "quantity": quantity}


# One app for every example: each starts by emptying the store it writes to.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(operation, max_size=25))
def test_quantity_always_equals_the_sum_of_the_ledger(
    writer: TestClient, memory: InMemoryDatabase, operations: list[tuple[str, str, int]]
) -> None:
    memory.store.products.clear()
    memory.store.ledger.clear()
    memory.store.idempotency.clear()
    memory.store.reservations.clear()
    reservations: list[str] = []
    # Every product exists at first, so that the reservations have stock to hold.
    for kind, sku, number in [("create", sku, 10) for sku in SKUS] + operations:
        ids = {p.sku: p.id for p in memory.store.products.values()}
        url = f"/products/{ids[sku]}" if sku in ids else None
        if kind in ("confirm", "release"):
            if number < len(reservations):
                writer.post(f"/reservations/{reservations[number]}/{kind}")
            continue
        if kind == "create":
            writer.post("/products", json=body(sku, number))
        elif kind == "batch":
            writer.post("/products/batch", json={"mode": "upsert", "products": [body(sku, number)]})
        elif url is None:
            continue
        elif kind == "reserve":
            cart = {"lines": [{"product_id": str(ids[sku]), "quantity": number}]}
            held = writer.post("/reservations", json=cart)
            event(f"reserve answered {held.status_code}")
            if held.status_code == 201:
                reservations.append(held.json()["id"])
        elif kind == "adjust":
            writer.post(f"{url}/stock-adjustments", json={"delta": number, "reason": "count"})
        elif kind == "put":
            writer.put(url, json=body(sku, number))
        elif kind == "patch":
            writer.patch(url, content=f'{{"quantity": {number}}}'.encode(), headers=MERGE)
        else:
            writer.delete(url)
        for product in memory.store.products.values():
            shown = writer.get(f"/products/{product.id}").json()
            assert 0 <= shown["available"] <= shown["quantity"]
    for product in memory.store.products.values():
        entries = [e for e in memory.store.ledger.values() if e.product_id == product.id]
        assert product.quantity == sum(e.delta for e in entries)
        assert all(e.delta != 0 for e in entries)
    alive = set(memory.store.products)
    assert all(e.product_id in alive for e in memory.store.ledger.values())
