"""Token buckets per caller, and the RateLimit fields and 429 the API answers with."""

from typing import Any

import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from cme_adapters.rate_limit import Decision, LocalBuckets, Rate, RateLimits, RedisBuckets
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.settings import Settings
from tests.unit.test_http_api import LAMP, assert_problem

pytestmark = pytest.mark.anyio
OTHER_KEY = "other-unit-test-key-0123"
KEY = "unit-test-key-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_of_its_quota_then_refuses_until_it_refills() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    rate = Rate(3, 60)  # one request back every 20 s
    taken = [buckets.take_now("a", rate) for _ in range(4)]
    assert [d.allowed for d in taken] == [True, True, True, False]
    assert [d.remaining for d in taken] == [2, 1, 0, 0]
    assert taken[2] == Decision(allowed=True, remaining=0, reset=60, retry_after=0)
    assert taken[3].retry_after == 20
    clock.now += 19.9
    assert not buckets.take_now("a", rate).allowed
    clock.now += 0.2
    assert buckets.take_now("a", rate).allowed
    clock.now += 3600
    assert buckets.take_now("a", rate).remaining == 2  # refilled, never beyond the quota


def test_each_key_has_its_own_bucket() -> None:
    buckets = LocalBuckets(Clock())
    rate = Rate(1, 60)
    assert buckets.take_now("alice", rate).allowed
    assert not buckets.take_now("alice", rate).allowed
    assert buckets.take_now("bob", rate).allowed


def test_full_buckets_are_forgotten_so_many_callers_cannot_grow_memory_without_bound() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock, max_keys=100)
    rate = Rate(2, 1)
    for n in range(1000):
        buckets.take_now(f"caller-{n}", rate)
        clock.now += 0.01
    assert len(buckets._buckets) <= 100
    # The callers still in the middle of a burst are remembered.
    assert buckets.take_now("caller-999", rate).remaining == 0


class BrokenRedis:
    """A client whose every call fails, as when Redis is down."""

    def __init__(self) -> None:
        self.calls = 0

    def register_script(self, script: str) -> Any:
        async def run(**kwargs: Any) -> Any:
            self.calls += 1
            raise ConnectionError("connection refused")

        return run


async def test_with_redis_down_each_worker_limits_alone_and_retries_redis_after_a_pause() -> None:
    clock = Clock()
    redis = BrokenRedis()
    buckets = RedisBuckets(redis, "t:", LocalBuckets(clock), pause_seconds=5, clock=clock)
    rate = Rate(2, 60)
    decisions = [await buckets.take("k", rate) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert redis.calls == 1  # then the pause: no round trip per request to a dead Redis
    clock.now += 5.1
    await buckets.take("k", rate)
    assert redis.calls == 2


def app_with(limits: RateLimits, memory: InMemoryDatabase) -> TestClient:
    settings = Settings(database_url="sqlite://", api_keys=(KEY, OTHER_KEY), rate_limits=limits)
    container = Container(settings=settings)
    container.database.override(providers.Object(memory))
    return TestClient(create_app(container), raise_server_exceptions=False)


def test_reads_carry_ratelimit_fields_and_past_the_quota_get_429_with_retry_after(
    memory: InMemoryDatabase,
) -> None:
    with app_with(RateLimits(reads=Rate(3, 60)), memory) as client:
        answers = [client.get("/products") for _ in range(3)]
        for remaining, answer in zip([2, 1, 0], answers, strict=True):
            assert answer.status_code == 200
            assert answer.headers["ratelimit-policy"] == '"reads";q=3;w=60'
            assert answer.headers["ratelimit"] == f'"reads";r={remaining};t={(3 - remaining) * 20}'
        refused = client.get("/products/00000000-0000-0000-0000-000000000000")
        problem = assert_problem(refused, 429)
        assert problem["type"] == "urn:cme:problem:rate-limited"
        assert refused.headers["retry-after"] == "20"
        assert refused.headers["ratelimit"] == '"reads";r=0;t=60'
        assert refused.headers["ratelimit-policy"] == '"reads";q=3;w=60'
        assert refused.headers["x-content-type-options"] == "nosniff"


def test_health_readiness_metrics_and_docs_are_never_limited(memory: InMemoryDatabase) -> None:
    with app_with(RateLimits(reads=Rate(1, 60)), memory) as client:
        for path in ["/health", "/db-check", "/metrics", "/", "/openapi.json"] * 3:
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert "ratelimit" not in answer.headers


def test_writes_are_limited_per_api_key_apart_from_reads(memory: InMemoryDatabase) -> None:
    with app_with(RateLimits(reads=Rate(100, 60), writes=Rate(2, 60)), memory) as client:
        first, second = KEY, OTHER_KEY
        codes = [
            client.post("/products", json={**LAMP, "sku": f"W-{n}"}, headers={"X-API-Key": first})
            for n in range(3)
        ]
        assert [c.status_code for c in codes] == [201, 201, 429]
        assert codes[0].headers["ratelimit-policy"] == '"writes";q=2;w=60'
        other = client.post("/products", json={**LAMP, "sku": "W-9"}, headers={"X-API-Key": second})
        assert other.status_code == 201
        assert client.get("/products").status_code == 200
        assert len(memory.store.products) == 3


def test_a_kind_set_to_no_limit_carries_no_fields(memory: InMemoryDatabase) -> None:
    with app_with(RateLimits(reads=None, writes=Rate(1, 60)), memory) as client:
        for _ in range(5):
            answer = client.get("/products")
            assert answer.status_code == 200
            assert "ratelimit" not in answer.headers


def test_batches_draw_on_their_own_bucket_not_the_writes(memory: InMemoryDatabase) -> None:
    limits = RateLimits(writes=Rate(5, 60), batch=Rate(1, 60))
    with app_with(limits, memory) as client:
        client.headers["X-API-Key"] = KEY
        body = {"mode": "upsert", "products": [LAMP]}
        first = client.post("/products/batch", json=body)
        assert first.status_code == 200
        assert first.headers["ratelimit-policy"] == '"batch";q=1;w=60'
        refused = client.post("/products/batch", json=body)
        assert_problem(refused, 429)
        assert refused.json()["detail"].startswith("too many batches from this caller;")
        assert client.post("/products", json={**LAMP, "sku": "OTHER"}).status_code == 201
