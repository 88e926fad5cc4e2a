"""Whatever sequence of writes, every product's quantity is the sum of its ledger's deltas."""

from typing import Any

from hypothesis import HealthCheck, given, settings
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
    for kind, sku, number in operations:
        ids = {p.sku: p.id for p in memory.store.products.values()}
        url = f"/products/{ids[sku]}" if sku in ids else None
        if kind == "create":
            writer.post("/products", json=body(sku, number))
        elif kind == "batch":
            writer.post("/products/batch", json={"mode": "upsert", "products": [body(sku, number)]})
        elif url is None:
            continue
        elif kind == "adjust":
            writer.post(f"{url}/stock-adjustments", json={"delta": number, "reason": "count"})
        elif kind == "put":
            writer.put(url, json=body(sku, number))
        elif kind == "patch":
            writer.patch(url, content=f'{{"quantity": {number}}}'.encode(), headers=MERGE)
        else:
            writer.delete(url)
    for product in memory.store.products.values():
        entries = [e for e in memory.store.ledger.values() if e.product_id == product.id]
        assert product.quantity == sum(e.delta for e in entries)
        assert all(e.delta != 0 for e in entries)
    alive = set(memory.store.products)
    assert all(e.product_id in alive for e in memory.store.ledger.values())
