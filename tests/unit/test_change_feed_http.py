"""GET /products/changes over HTTP on the in-memory store: the wire format and every refusal."""

from typing import Any

import pytest
from starlette.testclient import TestClient

from cme_entrypoints.http.feed import decode_cursor, encode_cursor

LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.90", "quantity": 4}


def changes(client: TestClient, **params: Any) -> Any:
    response = client.get("/products/changes", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def assert_problem(response: Any, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert [e["field"] for e in response.json()["errors"]] == [field]


def test_every_kind_of_write_shows_once_in_order_with_the_state_it_left(writer: TestClient) -> None:
    created = writer.post("/products", json=LAMP).json()
    url = f"/products/{created['id']}"
    replaced = writer.put(url, json={**LAMP, "quantity": 5}).json()
    patched = writer.patch(url, json={"price": "21.00"}).json()
    assert writer.delete(url).status_code == 204

    page = changes(writer)

    assert [(e["type"], e["version"]) for e in page["items"]] == [
        ("product.created", 1),
        ("product.updated", 2),
        ("product.updated", 3),
        ("product.deleted", 4),
    ]
    # The answers add what reservations leave available; an event holds no such thing.
    snapshots = [
        {k: v for k, v in p.items() if k != "available"} for p in (created, replaced, patched)
    ]
    assert [e["product"] for e in page["items"]] == [*snapshots, None]
    assert {e["product_id"] for e in page["items"]} == {created["id"]}
    assert [e["sequence"] for e in page["items"]] == [1, 2, 3, 4]
    assert page["items"][0]["occurred_at"] == created["created_at"]
    assert decode_cursor(page["next_cursor"]) == 4


def test_following_next_cursor_reads_each_event_once_and_then_waits_at_the_end(
    writer: TestClient,
) -> None:
    for n in range(5):
        writer.post("/products", json={**LAMP, "sku": f"L-{n}"})
    seen, cursor = [], None
    for _ in range(4):
        page = changes(writer, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [e["sequence"] for e in page["items"]]
        cursor = page["next_cursor"]

    assert seen == [1, 2, 3, 4, 5]
    assert changes(writer, cursor=cursor) == {"items": [], "next_cursor": cursor}


def test_latest_gives_no_events_and_a_cursor_that_sees_only_later_ones(writer: TestClient) -> None:
    writer.post("/products", json=LAMP)
    latest = changes(writer, cursor="latest")
    writer.post("/products", json={**LAMP, "sku": "LATER"})

    later = changes(writer, cursor=latest["next_cursor"])

    assert latest["items"] == []
    assert [e["product"]["sku"] for e in later["items"]] == ["LATER"]


def test_an_empty_feed_answers_a_cursor_all_the_same(client: TestClient) -> None:
    page = changes(client)
    assert page["items"] == []
    assert changes(client, cursor=page["next_cursor"])["items"] == []


@pytest.mark.parametrize(
    "cursor",
    # empty, not base64, no number, trailing junk, a leading zero, "latest" encoded, wrong case
    [
        "",
        "garbage!",
        "Y21lLWZlZWQ6",
        encode_cursor(1) + "A",
        "Y21lLWZlZWQ6MDE",
        "bGF0ZXN0",
        "LATEST",
    ],
)
def test_a_garbled_cursor_is_400(client: TestClient, cursor: str) -> None:
    assert_problem(client.get("/products/changes", params={"cursor": cursor}), 400)


def test_a_cursor_past_the_end_of_the_feed_is_400(client: TestClient) -> None:
    assert_problem(client.get("/products/changes", params={"cursor": encode_cursor(7)}), 400)


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "1.5", "x", "\u0661"])
def test_a_limit_outside_1_to_1000_is_422(client: TestClient, limit: str) -> None:
    assert_problem(client.get("/products/changes", params={"limit": limit}), 422, "limit")


@pytest.mark.parametrize("wait", ["31", "-1", "0.5", "soon"])
def test_a_wait_outside_0_to_30_seconds_is_422(client: TestClient, wait: str) -> None:
    assert_problem(client.get("/products/changes", params={"wait": wait}), 422, "wait")


def test_limit_1000_and_wait_30_are_accepted(writer: TestClient) -> None:
    writer.post("/products", json=LAMP)
    assert len(changes(writer, limit=1000, wait=30)["items"]) == 1


def test_the_metrics_count_events_written_and_feed_answers_with_their_lag(
    writer: TestClient,
) -> None:
    created = writer.post("/products", json=LAMP).json()
    writer.patch(f"/products/{created['id']}", json={"quantity": 1})
    writer.post("/products", json={**LAMP, "sku": "OTHER"})
    writer.post("/products", json=LAMP)  # a duplicate sku: no event
    changes(writer, limit=1)
    changes(writer, cursor="latest")

    text = writer.get("/metrics").text

    assert 'product_changes_written_total{type="product.created"} 2.0' in text
    assert 'product_changes_written_total{type="product.updated"} 1.0' in text
    assert 'product_changes_written_total{type="product.deleted"} 0.0' in text
    assert 'change_feed_requests_total{result="events"} 1.0' in text
    assert 'change_feed_requests_total{result="latest"} 1.0' in text
    # The first answer left 2 of the 3 events behind its cursor; cursor=latest left none.
    assert 'change_feed_lag_events_bucket{le="0"} 1.0' in text
    assert 'change_feed_lag_events_bucket{le="1"} 1.0' in text
    assert 'change_feed_lag_events_bucket{le="10"} 2.0' in text
    assert "change_feed_lag_events_sum 2.0" in text


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_writing_to_the_feed_is_405_not_a_product_lookup(writer: TestClient, method: str) -> None:
    response = writer.request(method, "/products/changes", json=LAMP)
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD"
