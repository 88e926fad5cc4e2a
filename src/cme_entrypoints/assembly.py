"""What the container builds by more than a constructor call: chosen, imported late, or wrapped."""

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from cme_adapters.auth.api_keys import ApiKeyAuthenticator
from cme_adapters.rate_limit import Limiter, LocalBuckets, RedisBuckets
from cme_adapters.sql.config import PoolSettings
from cme_adapters.telemetry.metrics import PrometheusMetrics
from cme_domain import reservation_use_cases, webhook_delivery
from cme_entrypoints.http.auth import RequestAuthenticator
from cme_entrypoints.settings import Settings

if TYPE_CHECKING:
    from cme_adapters.sqlite.database import SqlDatabase


def build_limiter(settings: Settings) -> Limiter:
    """Shared buckets in Redis when REDIS_URL is set; otherwise each worker keeps its own."""
    if settings.redis_url:
        return RedisBuckets.connect(settings.redis_url, settings.rate_limit_prefix)
    return LocalBuckets()


def build_authenticator(settings: Settings) -> RequestAuthenticator:
    """API keys, JWT, or both, as configured; with neither, every protected request is a 401."""
    tokens = None
    if settings.jwt is not None:
        # Imported only with JWT on: PyJWT and cryptography cost each worker 9 MiB.
        from cme_adapters.auth.jwt import JwtAuthenticator

        tokens = JwtAuthenticator(settings.jwt)
    return RequestAuthenticator(
        api_keys=ApiKeyAuthenticator(settings.api_keys),
        tokens=tokens,
        require_read_scope=settings.require_read_scope,
    )


def connect_sqlite(
    url: str, pool: PoolSettings, on_query: Callable[[float], None]
) -> "SqlDatabase":
    # Imported only for SQLite: SQLAlchemy's asyncio engine and aiosqlite cost a worker 8 MiB
    # that a PostgreSQL deployment never uses.
    from cme_adapters.sqlite.database import SqlDatabase

    return SqlDatabase.connect(url, pool, on_query)


def reservation_sweep(
    sweep: reservation_use_cases.SweepReservations, metrics: PrometheusMetrics
) -> Callable[[], Awaitable[int]]:
    """The sweep as the sweeper runs it: how many went, with the expired and the units held
    now told to the metrics."""

    async def run() -> int:
        swept = await sweep()
        metrics.reservation_ended("expired", swept.expired)
        metrics.units_held(swept.held_units)
        return swept.pruned

    return run


def webhook_sweep(
    sweep: webhook_delivery.SweepWebhooks, metrics: PrometheusMetrics
) -> Callable[[], Awaitable[int]]:
    """The sweep as the sweeper runs it: the attempts trimmed, the endpoints' lag and statuses
    told to the metrics."""

    async def run() -> int:
        swept = await sweep()
        metrics.webhooks.swept(swept)
        return swept.trimmed

    return run


def worker_name() -> str:
    """This worker among every pod's: the webhook leases' owner."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
