"""The Starlette application factory."""

import gc
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp

from cme_domain.errors import DomainError
from cme_entrypoints.container import Container
from cme_entrypoints.http import errors
from cme_entrypoints.http.docs import docs_routes
from cme_entrypoints.http.middleware import (
    REJECTED_REQUEST,
    ObservabilityMiddleware,
    report_rejected,
)
from cme_entrypoints.http.problems import Problem
from cme_entrypoints.http.rate_limit import RateLimitMiddleware
from cme_entrypoints.http.schema_check import SchemaGate
from cme_entrypoints.http.security import RequestGuard, cors
from cme_entrypoints.http.shutdown import drain_before_stopping
from cme_entrypoints.http.spans import ServerSpans
from cme_entrypoints.logs import AccessLog
from cme_entrypoints.sweeper import RESERVATION_SWEEP_SECONDS, WEBHOOK_SWEEP_SECONDS, pruning
from cme_entrypoints.webhook_worker import delivering

log = logging.getLogger("cme")


def create_app(container: Container) -> Starlette:
    """Resolve the whole object graph once; requests then touch only ready objects."""
    settings = container.settings()
    database = container.database()
    operations = container.operations_routes()
    products = container.product_routes()
    changes = container.feed_routes()
    notices = container.change_notices()
    stock = container.stock_routes()
    reservations = container.reservation_routes()
    webhooks = container.webhook_routes()
    metrics = container.metrics()
    metrics.watch_pool(database.pool_stats)
    authenticator = container.authenticator()
    limiter = container.rate_limiter()
    schema_check = container.schema_check()
    routes = (
        *operations.routes(),
        *changes.routes(),
        *stock.routes(),
        *products.routes(),
        *reservations.routes(),
        *webhooks.routes(),
        *docs_routes(settings.docs_url),
    )
    metrics.declare_routes(
        (method, str(getattr(route, "path_format", "")))
        for route in routes
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    )
    access_log = AccessLog(settings.log_format, settings.google_cloud_project)
    traces = container.traces()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        log.info("starting on %s", settings.database_location)
        if settings.missing_sqlite_folder:
            log.warning("the folder %s does not exist: create it", settings.missing_sqlite_folder)
        await database.open()
        database.listen()
        await schema_check.at_start()
        await authenticator.start()
        drain_before_stopping(
            operations.turn_unready, settings.shutdown_drain_seconds, end_waits=notices.stop
        )
        if not authenticator.enabled:
            log.warning("no API_KEY, API_KEYS or JWT_* configured: every write will be refused")
        # What start-up built (modules, the app, pools) lives as long as the worker. Frozen,
        # a full collection no longer walks it: those walks were the service's p99 (bench/).
        gc.freeze()
        try:
            async with (
                pruning(container.prune_idempotency_keys()),
                pruning(
                    container.sweep_reservations(),
                    RESERVATION_SWEEP_SECONDS,
                    "ended reservations",
                ),
                pruning(container.sweep_webhooks(), WEBHOOK_SWEEP_SECONDS, "webhook attempts"),
                delivering(
                    container.due_webhooks(),
                    container.deliver_webhook(),
                    notices,
                    schema_check.verify,
                ),
            ):
                # The HTTP protocol finds this in the lifespan state, for requests it refuses.
                yield {REJECTED_REQUEST: partial(report_rejected, metrics, access_log)}
        finally:
            gc.unfreeze()  # for an embedder, or a test, that goes on after the app
            operations.turn_unready()
            await database.close()
            await limiter.close()
            await container.webhook_sender().close()
            metrics.close()
            if traces is not None:
                traces.shutdown()  # sends the spans still batched
            log.info("stopped")

    # The whole stack, outermost first: the order a request passes through it. Starlette's own
    # stack would put its ServerErrorMiddleware outermost, so this one takes its place.
    middleware = [
        # Outside the 500 handler: even a 500 is counted, logged and given the request id and
        # security headers, all from one wrapper of send.
        Middleware(
            ObservabilityMiddleware,
            metrics=metrics,
            access_log=access_log,
            record=settings.request_telemetry,
            routes=routes,
            spans=ServerSpans(traces) if traces is not None else None,
        ),
        # An exception nothing inside handled: logged, answered with a 500 problem, re-raised.
        Middleware(ServerErrorMiddleware, handler=errors.unexpected_handler),
        *cors(settings.cors_allow_origins),
        Middleware(RequestGuard, authenticator=authenticator, metrics_token=settings.metrics_token),
        # After the guard, so that an authenticated caller is limited by who it is.
        Middleware(RateLimitMiddleware, limiter=limiter, limits=settings.rate_limits),
        Middleware(SchemaGate, check=schema_check),
        # Around the routes: what they raise on purpose becomes its problem response.
        Middleware(
            ExceptionMiddleware,
            handlers={
                Problem: errors.problem_handler,
                DomainError: errors.domain_handler,
                HTTPException: errors.http_handler,
            },
        ),
    ]
    app = Starlette(routes=list(routes), lifespan=lifespan)
    # No 307 from /products/ to /products: its Location would be built from the Host header,
    # which the client chooses. A path with a trailing slash is simply unknown (404).
    app.router.redirect_slashes = False
    # Built now, so Starlette never builds its own; add_middleware would now raise, not be lost.
    app.middleware_stack = layered(app.router, middleware)
    return app


def layered(app: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
    """app inside each middleware of the list, the first outermost."""
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
    return app
