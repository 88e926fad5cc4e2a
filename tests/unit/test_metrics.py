"""After known traffic, /metrics shows exact counters by label and the right histogram buckets."""

import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryProductRepository
from cme_adapters.telemetry.metrics import PrometheusMetrics
from cme_domain.webhook_delivery import WebhookSweep
from cme_domain.webhook_ports import Delivery
from cme_domain.webhooks import WebhookStatus
from cme_entrypoints.http import middleware

LAMP = {"sku": "M-1", "name": "Lamp", "price": "1.00", "quantity": 1}


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = client.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(method: str, path: str, status: int, **extra: str) -> frozenset[tuple[str, str]]:
    return frozenset({"method": method, "path": path, "status": str(status), **extra}.items())


def test_request_counter_counts_exactly_by_route_template_and_status(writer: TestClient) -> None:
    created = writer.post("/products", json=LAMP).json()
    for _ in range(3):
        writer.get(f"/products/{created['id']}")
    writer.get("/products/00000000-0000-0000-0000-000000000000")
    writer.post("/products", json={**LAMP, "quantity": -1})
    writer.get("/no/such/path")
    writer.get("/another/unknown/path")
    seen = samples(writer)
    total = "http_requests_total"
    assert seen[(total, labels("POST", "/products", 201))] == 1
    assert seen[(total, labels("GET", "/products/{id}", 200))] == 3
    assert seen[(total, labels("GET", "/products/{id}", 404))] == 1
    assert seen[(total, labels("POST", "/products", 422))] == 1
    assert seen[(total, labels("GET", "unmatched", 404))] == 2
    count = "request_latency_seconds_count"
    assert seen[(count, labels("GET", "/products/{id}", 200, long_poll="false"))] == 3
    assert not any("/no/such/path" in value for _, ls in seen for _, value in ls)


@pytest.fixture
def fixed_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request appears to take 0.3 s, so its bucket is known."""
    ticks = iter(x * 0.3 for x in range(1000))
    monkeypatch.setattr(middleware.time, "perf_counter", lambda: next(ticks))


def test_latency_lands_in_the_seed_buckets_and_the_finer_ones(
    client: TestClient, fixed_latency: None
) -> None:
    client.get("/health")
    client.get("/health")
    seen = samples(client)
    bucket = "request_latency_seconds_bucket"
    health = {"method": "GET", "path": "/health", "status": "200", "long_poll": "false"}
    below = {"0.001": 0, "0.0025": 0, "0.005": 0, "0.01": 0, "0.025": 0}
    seed = {"0.05": 0, "0.1": 0, "0.2": 0, "0.4": 2, "0.8": 2, "1.6": 2, "3.2": 2, "+Inf": 2}
    expected = {**below, **seed, "0.3": 2}  # le is inclusive: 0.3 s is within 0.3
    for le, value in expected.items():
        assert seen[(bucket, frozenset({**health, "le": le}.items()))] == value
    sum_labels = frozenset(health.items())
    assert seen[("request_latency_seconds_sum", sum_labels)] == pytest.approx(0.6)


def test_a_long_poll_has_its_own_latency_series(client: TestClient) -> None:
    """Its time is the wait it asked for: the latency SLO counts only long_poll="false"."""
    client.get("/products/changes?wait=1")
    client.get("/products/changes")
    seen = samples(client)
    count = "request_latency_seconds_count"
    assert seen[(count, labels("GET", "/products/changes", 200, long_poll="true"))] == 1
    assert seen[(count, labels("GET", "/products/changes", 200, long_poll="false"))] == 1


def test_in_flight_requests_return_to_zero(client: TestClient) -> None:
    client.get("/health")
    assert samples(client)[("http_requests_in_flight", frozenset())] == 1  # the scrape itself


def test_requests_refused_before_routing_are_counted_under_their_route(
    client: TestClient,
) -> None:
    client.post("/products", json=LAMP)  # no credentials: 401 from the guard
    client.get("/products?" + "q=" + "x" * 3000)  # 414 from the guard
    client.get("/nowhere")
    seen = samples(client)
    total = "http_requests_total"
    assert seen[(total, labels("POST", "/products", 401))] == 1
    assert seen[(total, labels("GET", "/products", 414))] == 1
    assert seen[(total, labels("GET", "unmatched", 404))] == 1
    assert (total, labels("POST", "unmatched", 401)) not in seen


def test_every_route_has_its_5xx_series_at_zero_before_any_error(client: TestClient) -> None:
    seen = samples(client)
    total = "http_requests_total"
    for method, path in [
        ("GET", "/health"),
        ("GET", "/products"),
        ("POST", "/products"),
        ("GET", "/products/{id}"),
        ("PATCH", "/products/{id}"),
        ("DELETE", "/products/{id}"),
    ]:
        assert seen[(total, labels(method, path, 500))] == 0
        assert seen[(total, labels(method, path, 503))] == 0
    assert (total, labels("HEAD", "/health", 500)) not in seen


def test_an_unexpected_exception_is_counted_as_a_500_under_its_route(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The observability middleware is outside Starlette's 500 handler, so it sees the 500."""

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(InMemoryProductRepository, "list", broken)
    assert client.get("/products").status_code == 500
    seen = samples(client)
    assert seen[("http_requests_total", labels("GET", "/products", 500))] == 1
    count = "request_latency_seconds_count"
    assert seen[(count, labels("GET", "/products", 500, long_poll="false"))] == 1
    assert seen[("http_requests_in_flight", frozenset())] == 1  # the scrape itself


def test_pool_gauges_are_never_negative() -> None:
    metrics = PrometheusMetrics()
    metrics.watch_pool(lambda: {"in_use": 1, "idle": 3, "overflow": -4})
    text = metrics.render()[0].decode()
    seen = {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "db_pool_connections"
        for sample in family.samples
    }
    assert seen == {"in_use": 1, "idle": 3, "overflow": 0}


def test_webhook_series_follow_the_last_sweep_and_count_attempts_by_outcome() -> None:
    metrics = PrometheusMetrics()
    hook = uuid.UUID("01a253e0-0000-7000-8000-000000000001")
    active, disabled = WebhookStatus.ACTIVE, WebhookStatus.DISABLED
    metrics.webhooks.swept(WebhookSweep(0, {hook: 42.5}, {active: 1, disabled: 2}))
    for code, error in ((204, None), (500, None), (None, "refused: 10.0.0.1 is private")):
        delivery = Delivery(hook, 1, "msg", datetime.now(UTC), code, error, 0.001)
        metrics.webhooks.attempted(delivery)

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = metrics.render()[0].decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name.startswith("webhook_")
        }

    seen = samples()
    assert seen[("webhook_delivery_lag_seconds", (("webhook", str(hook)),))] == 42.5
    assert seen[("webhook_endpoints", (("status", "disabled"),))] == 2
    for outcome in ("delivered", "failed", "refused"):
        assert seen[("webhook_deliveries_total", (("outcome", outcome),))] == 1
    metrics.webhooks.swept(WebhookSweep(0, {}, {active: 0, disabled: 3}))
    seen = samples()
    assert not [key for key in seen if key[0] == "webhook_delivery_lag_seconds"]
    assert seen[("webhook_endpoints", (("status", "disabled"),))] == 3
