"""Webhooks on the in-memory adapter: the endpoints' routes, and delivery on a clock the tests
move, to a sender that answers as told."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import attrs
import orjson
import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from cme_domain.feed import PruneChanges
from cme_domain.webhook_delivery import LEASE, DeliverWebhook, DueWebhooks, SweepWebhooks
from cme_domain.webhook_ports import Answer
from cme_domain.webhooks import LAST_RETRY, WebhookStatus, retry_delay
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.http.feed import event_body
from cme_entrypoints.settings import Settings
from tests.unit.conftest import API_KEY
from tests.unit.strategies import FakeClock

LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": "19.99", "quantity": 5}
TARGET = "http://127.0.0.1:9/hooks"


@attrs.define
class FakeSender:
    """Answers from `script` in order, then `then`; keeps every (url, message id, body)."""

    script: list[int | None] = attrs.Factory(list)
    then: int | None = 204
    sent: list[tuple[str, str, bytes]] = attrs.Factory(list)
    secrets: list[str] = attrs.Factory(list)
    after_send: Callable[[], None] = lambda: None

    async def send(self, url: str, secret: str, message_id: str, body: bytes) -> Answer:
        self.sent.append((url, message_id, body))
        self.secrets.append(secret)
        self.after_send()
        status = self.script.pop(0) if self.script else self.then
        return Answer(status, None if status else "connection refused", 0.001)

    async def close(self) -> None:
        return None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> InMemoryDatabase:
    return InMemoryDatabase(clock=clock)


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()


@pytest.fixture
def shop(store: InMemoryDatabase, clock: FakeClock, sender: FakeSender) -> Iterator[TestClient]:
    settings = Settings(
        database_url="sqlite://", api_keys=(API_KEY,), webhook_allow_private_addresses=True
    )
    container = Container(settings=settings)
    container.database.override(providers.Object(store))
    container.clock.override(providers.Object(clock))
    container.webhook_sender.override(providers.Object(sender))
    # The tests deliver themselves, step by step: no worker delivers behind their back.
    container.due_webhooks.override(providers.Object(lambda: _nothing()))
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = API_KEY
        yield client


async def _nothing() -> list[UUID]:
    return []


def deliverer(
    store: InMemoryDatabase, clock: FakeClock, sender: FakeSender, owner: str = "a"
) -> DeliverWebhook:
    return DeliverWebhook(store.unit_of_work, store.change_feed(), sender, clock, event_body, owner)


def subscribe(shop: TestClient, **fields: Any) -> dict[str, Any]:
    response = shop.post("/webhooks", json={"url": TARGET, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def write(shop: TestClient, sku: str) -> None:
    assert shop.post("/products", json={**LAMP, "sku": sku}).status_code == 201


def test_the_retry_delay_starts_at_a_second_and_doubles_to_ten_minutes() -> None:
    delays = [retry_delay(n).total_seconds() for n in range(1, 13)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert retry_delay(10_000) == LAST_RETRY


def test_a_created_webhook_shows_its_secret_once(shop: TestClient) -> None:
    hook = subscribe(shop, description="ERP")
    assert hook["secret"].startswith("whsec_")
    assert hook["status"] == "active"
    assert hook["events"] == [
        "product.created",
        "product.updated",
        "product.deleted",
        "product.stock_adjusted",
    ]
    fetched = shop.get(f"/webhooks/{hook['id']}").json()
    assert "secret" not in fetched
    assert fetched == {k: v for k, v in hook.items() if k != "secret"}
    assert shop.get("/webhooks").json() == {"items": [fetched]}
    rotated = shop.post(f"/webhooks/{hook['id']}/rotate-secret").json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != hook["secret"]


def test_reading_webhooks_needs_write_credentials(shop: TestClient) -> None:
    hook = subscribe(shop)
    for path in ("/webhooks", f"/webhooks/{hook['id']}", f"/webhooks/{hook['id']}/deliveries"):
        response = shop.get(path, headers={"X-API-Key": ""})
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://user:pw@example.com/x"}, "url"),
        ({"url": "https://example.com/x#part"}, "url"),
        ({"url": "https://example.com/" + "x" * 2000}, "url"),
        ({"url": 7}, "url"),
        ({"url": TARGET, "events": []}, "events"),
        ({"url": TARGET, "events": "product.created"}, "events"),
        ({"url": TARGET, "events": ["product.sold"]}, "events[0]"),
        ({"url": TARGET, "events": ["product.created", "product.created"]}, "events[1]"),
        ({"url": TARGET, "description": "x" * 501}, "description"),
        ({"url": TARGET, "secret": "mine"}, "secret"),
        ({"url": TARGET, "status": "disabled"}, "status"),
    ],
)
def test_an_invalid_webhook_is_a_422_naming_the_field(
    shop: TestClient, body: dict[str, Any], field: str
) -> None:
    response = shop.post("/webhooks", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_unknown_webhook_ids_are_404(shop: TestClient) -> None:
    missing = "01a253e0-0000-7000-8000-000000000000"
    for method, path in [
        ("GET", f"/webhooks/{missing}"),
        ("PATCH", f"/webhooks/{missing}"),
        ("DELETE", f"/webhooks/{missing}"),
        ("POST", f"/webhooks/{missing}/rotate-secret"),
        ("GET", f"/webhooks/{missing}/deliveries"),
        ("GET", "/webhooks/not-a-uuid"),
    ]:
        json = {} if method == "PATCH" else None
        assert shop.request(method, path, json=json).status_code == 404, (method, path)


def test_the_deliveries_limit_outside_1_to_100_is_a_422(shop: TestClient) -> None:
    hook = subscribe(shop)
    for limit in ("0", "101", "x", "-1"):
        response = shop.get(f"/webhooks/{hook['id']}/deliveries?limit={limit}")
        assert response.status_code == 422, limit


def test_events_go_in_order_once_each_and_equal_to_the_feed(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock, sender: FakeSender
) -> None:
    write(shop, "BEFORE")
    subscribe(shop)
    for n in range(3):
        write(shop, f"SKU-{n}")
    deliver = deliverer(store, clock, sender)
    assert shop.portal.call(deliver, next(iter(store.store.webhooks))) == 3
    feed = shop.get("/products/changes").json()["items"]
    assert [orjson.loads(body) for _, _, body in sender.sent] == feed[1:]
    assert shop.portal.call(deliver, next(iter(store.store.webhooks))) == 0
    assert len(sender.sent) == 3


def test_a_failure_holds_back_later_events_until_its_retry_succeeds(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock, sender: FakeSender
) -> None:
    hook_id = UUID(subscribe(shop)["id"])
    write(shop, "A")
    write(shop, "B")
    sender.script = [500, None, 503]
    deliver = deliverer(store, clock, sender)
    due = DueWebhooks(store.unit_of_work, store.change_feed(), clock)
    waits = []
    for _ in range(3):
        assert shop.portal.call(deliver, hook_id) == 0
        webhook = store.store.webhooks[hook_id]
        assert webhook.next_attempt_at is not None
        waits.append((webhook.next_attempt_at - clock.now()).total_seconds())
        assert shop.portal.call(due) == []  # not before its time
        clock.current = webhook.next_attempt_at
        assert shop.portal.call(due) == [hook_id]
    assert waits == [1, 2, 4]
    assert shop.portal.call(deliver, hook_id) == 2
    ids = [message for _, message, _ in sender.sent]
    assert ids[:4] == [ids[0]] * 4
    assert ids[4] != ids[0]
    assert store.store.webhooks[hook_id].attempts == 0
    log = shop.get(f"/webhooks/{hook_id}/deliveries").json()["items"]
    assert [d["status_code"] for d in log] == [204, 204, 503, None, 500]
    assert log[3]["error"] == "connection refused"


def test_a_day_of_failures_disables_the_endpoint_and_turning_it_on_resumes_it(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock, sender: FakeSender
) -> None:
    hook_id = UUID(subscribe(shop)["id"])
    write(shop, "A")
    sender.then = 500
    deliver = deliverer(store, clock, sender)
    started = clock.now()
    while store.store.webhooks[hook_id].status is WebhookStatus.ACTIVE:
        last_try = clock.now()
        shop.portal.call(deliver, hook_id)
        next_attempt = store.store.webhooks[hook_id].next_attempt_at
        assert next_attempt is not None
        clock.current = next_attempt
    # The first attempt 24 h or more after the first failure disabled it; one 10 minutes
    # sooner did not.
    assert timedelta(hours=24) <= last_try - started < timedelta(hours=24, minutes=10)
    shown = shop.get(f"/webhooks/{hook_id}").json()
    assert shown["status"] == "disabled"
    assert shop.portal.call(deliver, hook_id) == 0
    tried = len(sender.sent)
    sender.then = 204
    resumed = shop.patch(f"/webhooks/{hook_id}", json={"status": "active"})
    assert resumed.status_code == 200
    assert resumed.json()["failing_since"] is None
    assert shop.portal.call(deliver, hook_id) == 1
    assert sender.sent[-1][1] == sender.sent[0][1]  # the event it stopped at
    assert len(sender.sent) == tried + 1


def test_one_worker_at_a_time_holds_an_endpoint_until_its_lease_runs_out(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock, sender: FakeSender
) -> None:
    hook_id = UUID(subscribe(shop)["id"])
    write(shop, "A")
    hooks = store.unit_of_work(atomic=False).webhooks
    now = clock.now()
    assert shop.portal.call(hooks.claim, hook_id, "a", now, now + LEASE) is not None
    assert shop.portal.call(deliverer(store, clock, sender, owner="b"), hook_id) == 0
    assert sender.sent == []
    assert not shop.portal.call(hooks.advance, hook_id, "b", 99, now + LEASE)
    clock.advance(LEASE)  # "a" died holding it
    assert shop.portal.call(deliverer(store, clock, sender, owner="b"), hook_id) == 1
    assert not shop.portal.call(hooks.advance, hook_id, "a", 99, clock.now() + LEASE)


def test_a_deleted_endpoint_gets_nothing_more(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock, sender: FakeSender
) -> None:
    hook = subscribe(shop)
    write(shop, "A")
    deliver = deliverer(store, clock, sender)
    assert shop.portal.call(deliver, UUID(hook["id"])) == 1
    assert shop.delete(f"/webhooks/{hook['id']}").status_code == 204
    write(shop, "B")
    assert shop.portal.call(deliver, UUID(hook["id"])) == 0
    assert len(sender.sent) == 1


def test_unwanted_types_are_skipped_and_events_lost_to_retention_are_logged(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock, sender: FakeSender
) -> None:
    hook_id = UUID(subscribe(shop, events=["product.deleted"])["id"])
    write(shop, "A")
    shop.patch(f"/webhooks/{hook_id}", json={"status": "disabled"})
    clock.advance(timedelta(days=8))
    shop.portal.call(PruneChanges(store.change_feed(), clock, timedelta(days=7)))
    created = shop.post("/products", json={**LAMP, "sku": "B"}).json()
    assert shop.delete(f"/products/{created['id']}").status_code == 204
    assert shop.patch(f"/webhooks/{hook_id}", json={"status": "active"}).status_code == 200
    assert shop.portal.call(deliverer(store, clock, sender), hook_id) == 1
    assert [orjson.loads(b)["type"] for _, _, b in sender.sent] == ["product.deleted"]
    log = shop.get(f"/webhooks/{hook_id}/deliveries").json()["items"]
    assert log[-1]["status_code"] is None
    assert "deleted by retention" in log[-1]["error"]
    assert store.store.webhooks[hook_id].position == store.store.last_position


def test_the_sweep_reports_each_active_endpoints_lag(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock, sender: FakeSender
) -> None:
    hook_id = UUID(subscribe(shop)["id"])
    write(shop, "A")
    clock.advance(timedelta(seconds=42))
    sweep = SweepWebhooks(store.unit_of_work, store.change_feed(), clock)
    assert shop.portal.call(sweep).lag == {hook_id: 42.0}
    shop.portal.call(deliverer(store, clock, sender), hook_id)
    assert shop.portal.call(sweep).lag == {hook_id: 0.0}
    shop.patch(f"/webhooks/{hook_id}", json={"status": "disabled"})
    swept = shop.portal.call(sweep)
    assert swept.lag == {}
    assert swept.endpoints == {WebhookStatus.ACTIVE: 0, WebhookStatus.DISABLED: 1}


def test_an_event_body_is_the_feed_item_byte_for_byte(
    shop: TestClient, store: InMemoryDatabase
) -> None:
    write(shop, "A")
    page = shop.get("/products/changes").content
    (change,) = store.store.changes
    assert b'"items":[' + event_body(change) + b"]" in page


def test_a_new_secret_or_url_applies_from_the_next_event_of_a_backlog(
    shop: TestClient, store: InMemoryDatabase, clock: FakeClock, sender: FakeSender
) -> None:
    hook = subscribe(shop)
    hook_id = UUID(hook["id"])
    for n in range(3):
        write(shop, f"SKU-{n}")

    def rotate_once() -> None:  # as a rotation and a PATCH, made while the first is in flight
        sender.after_send = lambda: None
        webhook = store.store.webhooks[hook_id]
        moved = attrs.evolve(webhook, secret="whsec_bmV3", url="http://127.0.0.1:9/new")
        store.store.webhooks[hook_id] = moved

    sender.after_send = rotate_once
    assert shop.portal.call(deliverer(store, clock, sender), hook_id) == 3
    assert sender.secrets == [hook["secret"], "whsec_bmV3", "whsec_bmV3"]
    assert [url for url, _, _ in sender.sent] == [TARGET] + ["http://127.0.0.1:9/new"] * 2


def test_a_patch_of_an_unknown_webhook_is_a_404_whatever_its_body(shop: TestClient) -> None:
    missing = "01a253e0-0000-7000-8000-000000000000"
    for body in ({"url": "https://10.0.0.1/x"}, {"status": "active"}):
        assert shop.patch(f"/webhooks/{missing}", json=body).status_code == 404


@pytest.mark.parametrize("status", [[], {}, 1, None, "paused"])
def test_a_patch_of_a_status_other_than_active_or_disabled_is_a_422(
    shop: TestClient, status: object
) -> None:
    hook = subscribe(shop)
    response = shop.patch(f"/webhooks/{hook['id']}", json={"status": status})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["status"]
