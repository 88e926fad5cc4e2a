"""The deliveries each worker runs beside its requests: every endpoint that is due, at once."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Final
from uuid import UUID

from cme_domain.changes import ChangeNotices
from cme_domain.errors import StorageUnavailable
from cme_domain.webhook_delivery import DeliverWebhook, DueWebhooks
from cme_entrypoints.http.problems import Problem

log = logging.getLogger("cme.webhooks")
# Retries come due at whole seconds of backoff: looking this often keeps them on time.
LOOK_SECONDS: Final = 1.0
# Under a stream of commits, each of which notifies, look at most this often.
LOOK_AT_MOST_SECONDS: Final = 0.05
# Endpoints one worker delivers to at the same time; the rest wait for a free place.
PARALLEL: Final = 32


@contextlib.asynccontextmanager
async def delivering(
    due: DueWebhooks,
    deliver: DeliverWebhook,
    notices: ChangeNotices,
    schema_ready: Callable[[], Awaitable[None]],
) -> AsyncIterator[None]:
    """Deliver to the due endpoints until the block ends; in-flight attempts are cancelled
    then, and their events sent again later (they were never acknowledged).

    schema_ready raises a Problem while the database's schema is behind the code's, as the
    routes answer 503 then: nothing is looked for until it returns.
    """
    running: dict[UUID, asyncio.Task[int]] = {}
    look = _look(due, deliver, notices, schema_ready, running)
    task = asyncio.create_task(look, name="cme-webhooks")
    try:
        yield
    finally:
        for each in (task, *running.values()):
            each.cancel()
        await asyncio.gather(task, *running.values(), return_exceptions=True)


async def _look(
    due: DueWebhooks,
    deliver: DeliverWebhook,
    notices: ChangeNotices,
    schema_ready: Callable[[], Awaitable[None]],
    running: dict[UUID, asyncio.Task[int]],
) -> None:
    failing = False
    while True:
        started = time.monotonic()
        heard = notices.heard()
        try:
            await schema_ready()
            ready = await due()
        except (StorageUnavailable, Problem) as error:
            # Once per outage, not once a second; and at info, since the requests' own 503s and
            # the start-up check already warn of it.
            if not failing:
                log.info("webhook deliveries wait: %s", getattr(error, "detail", error))
            failing, ready = True, ()
        except Exception:  # a bug must not stop every delivery of this worker for good
            log.exception("looking for due webhooks failed")
            failing, ready = True, ()
        else:
            if failing:
                log.info("webhooks delivered again")
            failing = False
        for webhook_id in ready:
            if webhook_id not in running and len(running) < PARALLEL:
                name = f"cme-webhook-{webhook_id}"
                running[webhook_id] = asyncio.create_task(deliver(webhook_id), name=name)
                running[webhook_id].add_done_callback(partial(_finished, running, webhook_id))
        await notices.wait(heard, LOOK_SECONDS)
        # Without a notice (a poll ran out, or the service is stopping), look again only once
        # the interval is over; after one, soon, but not once per commit of a busy stream.
        pause = LOOK_AT_MOST_SECONDS if notices.heard() != heard else LOOK_SECONDS
        await asyncio.sleep(max(pause - (time.monotonic() - started), 0))


def _finished(running: dict[UUID, asyncio.Task[int]], key: UUID, done: asyncio.Task[int]) -> None:
    running.pop(key, None)
    if done.cancelled():
        return
    error = done.exception()
    if isinstance(error, StorageUnavailable):
        log.warning("deliveries to webhook %s stopped: %s", key, error)
    elif error is not None:
        log.error("deliveries to webhook %s failed", key, exc_info=error)
