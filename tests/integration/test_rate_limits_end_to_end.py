"""Rate limits on a real `cme serve` with two workers: per worker alone, shared through Redis."""

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
import redis

from tests.integration.server import free_port, running_cme

REDIS_URL = "redis://127.0.0.1:6379/0"
API_KEY = "e2e-rate-key-0123456789"
QUOTA = 6
REQUESTS = 40


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own in the shared Redis, and nothing left behind."""
    name = f"cme-test-{uuid.uuid4().hex}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=name + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def hammer(base_url: str, path: str = "/products", **headers: str) -> list[httpx.Response]:
    # A new connection per request, so that both workers take their share.
    answers = []
    for _ in range(REQUESTS):
        with httpx.Client(base_url=base_url, timeout=10) as client:
            answers.append(client.get(path, headers={"Connection": "close", **headers}))
    return answers


def serve(env: dict[str, str], tmp_path: Path, database_url: str) -> object:
    full = {
        "DATABASE_URL": database_url,
        "API_KEY": API_KEY,
        "RATE_LIMIT_READS": f"{QUOTA}/3600",
        **env,
    }
    return running_cme(full, tmp_path, tmp_path / "cme.log", "--workers", "2")


def check_fields(answers: list[httpx.Response]) -> None:
    for answer in answers:
        assert answer.headers["ratelimit-policy"] == f'"reads";q={QUOTA};w=3600'
        assert re.fullmatch(r'"reads";r=\d+;t=\d+', answer.headers["ratelimit"])
        if answer.status_code == 429:
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["retry-after"]) > 0


def test_without_redis_each_of_two_workers_limits_on_its_own(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    with serve({}, tmp_path, empty_postgres_url) as (base_url, _):  # type: ignore[attr-defined]
        answers = hammer(base_url)
        assert httpx.get(f"{base_url}/health").status_code == 200
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) == {200, 429}
    assert QUOTA < statuses[200] <= 2 * QUOTA, statuses
    check_fields(answers)


def test_with_redis_two_workers_share_one_bucket_per_caller(
    empty_postgres_url: str, tmp_path: Path, prefix: str
) -> None:
    env = {"REDIS_URL": REDIS_URL, "RATE_LIMIT_PREFIX": prefix}
    with serve(env, tmp_path, empty_postgres_url) as (base_url, _):  # type: ignore[attr-defined]
        answers = hammer(base_url)
        # Public reads are counted by address, key or not; a write by the key's name.
        keyed = httpx.get(f"{base_url}/products", headers={"X-API-Key": API_KEY})
        assert keyed.status_code == 429
        writes = httpx.post(
            f"{base_url}/products",
            json={"sku": "RL-1", "name": "n", "price": "1", "quantity": 1},
            headers={"X-API-Key": API_KEY},
        )
        assert writes.status_code == 201
        assert writes.headers["ratelimit-policy"] == '"writes";q=600;w=60'
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {200: QUOTA, 429: REQUESTS - QUOTA}
    check_fields(answers)
    stored = redis.Redis.from_url(REDIS_URL)
    assert stored.exists(prefix + "reads:address:127.0.0.1")
    assert stored.exists(prefix + "writes:subject:api-key:default")
    stored.close()


def test_with_redis_unreachable_every_request_is_served_and_limited_per_worker(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with serve(env, tmp_path, empty_postgres_url) as (base_url, _):  # type: ignore[attr-defined]
        answers = hammer(base_url)
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) == {200, 429}
    assert QUOTA < statuses[200] <= 2 * QUOTA, statuses
    check_fields(answers)
    assert "Redis unavailable" in (tmp_path / "cme.log").read_text()
