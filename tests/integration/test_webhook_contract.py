"""The webhook repository on memory, SQLite and PostgreSQL alike: endpoints, leases, the log."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import attrs
import pytest

from cme_adapters.system import Uuid7Generator
from cme_domain.changes import ChangeType
from cme_domain.webhook_ports import Delivery
from cme_domain.webhooks import Webhook, WebhookStatus

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
LEASE = timedelta(seconds=60)
IDS = Uuid7Generator()


def endpoint(**fields: Any) -> Webhook:
    values: dict[str, Any] = {
        "id": IDS.new_id(),
        "url": "https://example.com/hooks",
        "events": (ChangeType.CREATED, ChangeType.DELETED),
        "description": "ERP",
        "status": WebhookStatus.ACTIVE,
        "secret": "whsec_c2VjcmV0",
        "created_at": T0,
        "updated_at": T0,
        "position": 0,
    }
    return Webhook(**{**values, **fields})


async def stored(database: Any, webhook: Webhook) -> Webhook:
    async with database.unit_of_work(atomic=False) as uow:
        await uow.webhooks.add(webhook)
        found: Webhook = await uow.webhooks.get(webhook.id)
    return found


async def test_an_endpoint_reads_back_as_it_was_stored(database: Any) -> None:
    webhook = endpoint(failing_since=T0, next_attempt_at=T0 + LEASE, attempts=3)
    assert await stored(database, webhook) == webhook
    every = endpoint(events=None, description=None, created_at=T0 + LEASE)
    await stored(database, every)
    async with database.unit_of_work(atomic=False) as uow:
        assert list(await uow.webhooks.list()) == [webhook, every]
        assert await uow.webhooks.delete(webhook.id)
        assert not await uow.webhooks.delete(webhook.id)
        assert await uow.webhooks.get(webhook.id) is None
        assert not await uow.webhooks.save(webhook, resumed=False)


async def test_saving_settings_leaves_the_position_and_only_a_resume_clears_failures(
    database: Any,
) -> None:
    webhook = await stored(database, endpoint(attempts=2, failing_since=T0, next_attempt_at=T0))
    async with database.unit_of_work(atomic=False) as uow:
        assert await uow.webhooks.claim(webhook.id, "a", T0, T0 + LEASE) is not None
        assert await uow.webhooks.advance(webhook.id, "a", 7, T0 + LEASE) is not None
        failed = attrs.evolve(webhook, attempts=5, failing_since=T0, next_attempt_at=T0)
        assert await uow.webhooks.failed(failed, "a")
        changed = attrs.evolve(webhook, url="https://example.org/x", events=None, position=0)
        assert await uow.webhooks.save(changed, resumed=False)
        after = await uow.webhooks.get(webhook.id)
        assert (after.url, after.events, after.position, after.attempts) == (
            "https://example.org/x",
            None,
            7,
            5,
        )
        assert await uow.webhooks.save(changed, resumed=True)
        resumed = await uow.webhooks.get(webhook.id)
        assert (resumed.attempts, resumed.failing_since, resumed.next_attempt_at) == (0, None, None)


async def test_only_the_lease_holder_moves_an_endpoint_until_the_lease_runs_out(
    database: Any,
) -> None:
    webhook = await stored(database, endpoint())
    hooks = database.unit_of_work(atomic=False).webhooks
    assert await hooks.claim(webhook.id, "a", T0, T0 + LEASE) == webhook
    assert await hooks.claim(webhook.id, "b", T0, T0 + LEASE) is None
    assert await hooks.claim(webhook.id, "a", T0, T0 + LEASE) is not None  # a renewal
    assert list(await hooks.due(T0, 10)) == []
    assert await hooks.advance(webhook.id, "b", 5, T0 + LEASE) is None
    moved = await hooks.advance(webhook.id, "a", 5, T0 + LEASE)
    assert moved == attrs.evolve(webhook, position=5)
    later = T0 + LEASE
    assert list(await hooks.due(later, 10)) == [webhook.id]
    assert list(await hooks.due(later, 5)) == []  # caught up with the feed's end
    taken = await hooks.claim(webhook.id, "b", later, later + LEASE)
    assert taken is not None
    assert taken.position == 5
    assert await hooks.advance(webhook.id, "a", 6, later + LEASE) is None
    assert not await hooks.failed(attrs.evolve(webhook, attempts=1), "a")
    await hooks.release(webhook.id, "a")  # not its lease: nothing happens
    assert await hooks.claim(webhook.id, "a", later, later + LEASE) is None
    await hooks.release(webhook.id, "b")
    assert await hooks.claim(webhook.id, "a", later, later + LEASE) is not None


async def test_a_failure_gives_the_lease_up_and_waits_for_its_retry_time(database: Any) -> None:
    webhook = await stored(database, endpoint())
    hooks = database.unit_of_work(atomic=False).webhooks
    assert await hooks.claim(webhook.id, "a", T0, T0 + LEASE) is not None
    retry = T0 + timedelta(seconds=2)
    failed = attrs.evolve(webhook, attempts=2, failing_since=T0, next_attempt_at=retry)
    assert await hooks.failed(failed, "a")
    assert await hooks.claim(webhook.id, "b", T0, T0 + LEASE) is None
    assert list(await hooks.due(T0, 1)) == []
    assert list(await hooks.due(retry, 1)) == [webhook.id]
    assert await hooks.claim(webhook.id, "b", retry, retry + LEASE) is not None
    disabled = attrs.evolve(failed, status=WebhookStatus.DISABLED)
    assert await hooks.failed(disabled, "b")
    assert (await hooks.get(webhook.id)).status is WebhookStatus.DISABLED
    assert await hooks.claim(webhook.id, "b", retry, retry + LEASE) is None
    assert list(await hooks.due(retry, 1)) == []


async def test_a_failure_never_turns_back_on_an_endpoint_disabled_meanwhile(database: Any) -> None:
    webhook = await stored(database, endpoint())
    hooks = database.unit_of_work(atomic=False).webhooks
    assert await hooks.claim(webhook.id, "a", T0, T0 + LEASE) is not None
    off = attrs.evolve(webhook, status=WebhookStatus.DISABLED)
    assert await hooks.save(off, resumed=False)
    assert await hooks.advance(webhook.id, "a", 3, T0 + LEASE) is None
    assert await hooks.failed(attrs.evolve(webhook, attempts=1, next_attempt_at=T0), "a")
    assert (await hooks.get(webhook.id)).status is WebhookStatus.DISABLED


async def test_the_log_is_newest_first_skips_deleted_endpoints_and_is_trimmed(
    database: Any,
) -> None:
    first = await stored(database, endpoint())
    second = await stored(database, endpoint())
    hooks = database.unit_of_work(atomic=False).webhooks
    attempts = [
        Delivery(first.id, n, f"msg_{n}", T0 + timedelta(days=n), 500, None, 0.25)
        for n in range(1, 6)
    ]
    for delivery in attempts:
        await hooks.record(delivery)
    refused = Delivery(second.id, 1, "msg_x", T0, None, "refused: loopback", 0.0)
    await hooks.record(refused)
    assert list(await hooks.deliveries(first.id, 3)) == attempts[:-4:-1]
    assert list(await hooks.deliveries(second.id, 10)) == [refused]
    # The two oldest of `first` are past a week; of the rest, each endpoint keeps its 2 newest.
    assert await hooks.trim(2, T0 + timedelta(days=3)) == 4
    assert list(await hooks.deliveries(first.id, 10)) == attempts[:2:-1]
    assert list(await hooks.deliveries(second.id, 10)) == []
    assert await hooks.delete(first.id)
    await hooks.record(attempts[0])
    assert list(await hooks.deliveries(first.id, 10)) == []


async def test_of_many_workers_claiming_at_once_exactly_one_gets_the_endpoint(
    database: Any,
) -> None:
    webhook = await stored(database, endpoint())

    async def claim(owner: str) -> UUID | None:
        async with database.unit_of_work(atomic=False) as uow:
            got = await uow.webhooks.claim(webhook.id, owner, T0, T0 + LEASE)
        return None if got is None else got.id

    won = await asyncio.gather(*(claim(f"worker-{n}") for n in range(8)))
    assert won.count(webhook.id) == 1


async def test_an_acknowledgement_logs_the_attempt_and_moves_the_position_in_one_step(
    database: Any,
) -> None:
    webhook = await stored(database, endpoint())
    hooks = database.unit_of_work(atomic=False).webhooks
    assert await hooks.claim(webhook.id, "a", T0, T0 + LEASE) is not None
    rotated = attrs.evolve(webhook, secret="whsec_bmV3", updated_at=T0 + LEASE)
    assert await hooks.save(rotated, resumed=False)
    ok = Delivery(webhook.id, 4, "msg_4", T0, 204, None, 0.002)
    # The endpoint as it is now, with the secret rotated while the attempt was in flight.
    assert await hooks.acknowledged(ok, "a", T0 + LEASE) == attrs.evolve(rotated, position=4)
    late = Delivery(webhook.id, 5, "msg_5", T0, 200, None, 0.002)
    assert await hooks.acknowledged(late, "b", T0 + LEASE) is None  # b holds no lease
    assert (await hooks.get(webhook.id)).position == 4
    assert list(await hooks.deliveries(webhook.id, 10)) == [late, ok]
    assert await hooks.delete(webhook.id)
    assert await hooks.acknowledged(ok, "a", T0 + LEASE) is None
