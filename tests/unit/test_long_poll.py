"""Long polls: a wait ends when its client leaves, and waits are bounded per worker and caller."""

import asyncio
import time
from typing import Any

import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.http.long_poll import WaitSlots, unless_gone
from cme_entrypoints.http.problems import Problem
from cme_entrypoints.settings import Settings
from cme_entrypoints.settings_parsing import SettingsError


def test_a_caller_past_its_bound_gets_429_and_the_worker_past_its_bound_503() -> None:
    slots = WaitSlots(per_worker=3, per_caller=2)
    with slots.taken("a"), slots.taken("a"):
        with pytest.raises(Problem) as caller_over, slots.taken("a"):
            pass
        with slots.taken("b"), pytest.raises(Problem) as worker_over, slots.taken("c"):
            pass
    assert (caller_over.value.status, caller_over.value.slug) == (429, "too-many-waits")
    assert (worker_over.value.status, worker_over.value.headers) == (503, {"Retry-After": "1"})
    with slots.taken("a"), slots.taken("a"), slots.taken("c"):
        pass  # every slot came back, and a refusal took none


def test_a_wait_that_raises_gives_its_slot_back() -> None:
    slots = WaitSlots(per_worker=1, per_caller=1)
    with pytest.raises(RuntimeError), slots.taken("a"):
        raise RuntimeError("the read failed")
    with slots.taken("a"):
        pass


@pytest.mark.anyio
async def test_a_wait_ends_as_soon_as_its_client_disconnects_and_the_work_is_cancelled() -> None:
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    work = asyncio.ensure_future(asyncio.sleep(30, "events"))
    asyncio.get_running_loop().call_later(0.05, gone.set)
    started = time.monotonic()

    assert await unless_gone(work, receive) is None
    assert time.monotonic() - started < 1
    await asyncio.sleep(0)
    assert work.cancelled()


@pytest.mark.anyio
async def test_a_wait_whose_client_stays_gives_the_work_its_answer() -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    assert await unless_gone(asyncio.sleep(0.01, "events"), receive) == "events"


def test_over_http_the_bound_answers_problem_json_and_a_wait_without_one_is_not_counted() -> None:
    settings = Settings(database_url="sqlite://", feed_waits_per_worker=0)
    container = Container(settings=settings)
    container.database.override(providers.Object(InMemoryDatabase()))
    with TestClient(create_app(container)) as client:
        refused = client.get("/products/changes", params={"wait": 1})
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["type"] == "urn:cme:problem:too-many-waits"
        assert client.get("/products/changes").status_code == 200


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FEED_WAITS_PER_WORKER": "1000"}, "FEED_WAITS_PER_WORKER"),
        ({"MAX_CONNECTIONS": "10", "FEED_WAITS_PER_WORKER": "10"}, "FEED_WAITS_PER_WORKER"),
        ({"FEED_WAITS_PER_CALLER": "0"}, "FEED_WAITS_PER_CALLER"),
    ],
)
def test_a_wait_bound_that_leaves_no_room_for_other_requests_stops_start_up(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_the_worker_bound_defaults_below_a_small_connection_cap() -> None:
    assert Settings.from_env({}).feed_waits_per_worker == 100
    assert Settings.from_env({"MAX_CONNECTIONS": "50"}).feed_waits_per_worker == 49
