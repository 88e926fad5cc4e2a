"""After known traffic, /metrics shows exact counters by label and the right histogram buckets."""

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

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
    assert seen[(count, labels("GET", "/products/{id}", 200))] == 3
    assert not any("/no/such/path" in value for _, ls in seen for _, value in ls)


@pytest.fixture
def fixed_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request appears to take 0.3 s, so its bucket is known."""
    ticks = iter(x * 0.3 for x in range(1000))
    monkeypatch.setattr(middleware.time, "perf_counter", lambda: next(ticks))


def test_latency_lands_in_the_seed_buckets(client: TestClient, fixed_latency: None) -> None:
    client.get("/health")
    client.get("/health")
    seen = samples(client)
    bucket = "request_latency_seconds_bucket"
    health = {"method": "GET", "path": "/health", "status": "200"}
    expected = {"0.05": 0, "0.1": 0, "0.2": 0, "0.4": 2, "0.8": 2, "1.6": 2, "3.2": 2, "+Inf": 2}
    for le, value in expected.items():
        assert seen[(bucket, frozenset({**health, "le": le}.items()))] == value
    sum_labels = frozenset(health.items())
    assert seen[("request_latency_seconds_sum", sum_labels)] == pytest.approx(0.6)


def test_in_flight_requests_return_to_zero(client: TestClient) -> None:
    client.get("/health")
    assert samples(client)[("http_requests_in_flight", frozenset())] == 1  # the scrape itself
