"""The Starlette application factory."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from cme_domain.errors import DomainError
from cme_entrypoints.container import Container
from cme_entrypoints.http import errors
from cme_entrypoints.http.docs import docs_routes
from cme_entrypoints.http.middleware import ObservabilityMiddleware
from cme_entrypoints.http.problems import Problem

log = logging.getLogger("cme")


def create_app(container: Container) -> Starlette:
    """Resolve the whole object graph once; requests then touch only ready objects."""
    settings = container.settings()
    database = container.database()
    operations = container.operations_routes()
    products = container.product_routes()
    metrics = container.metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("cme starting on %s storage", settings.database_kind)
        if not settings.api_keys:
            log.warning("no API_KEY or API_KEYS configured: every write will be refused")
        try:
            yield
        finally:
            operations.shutting_down = True
            await database.close()
            metrics.close()
            log.info("cme stopped")

    return Starlette(
        routes=[*operations.routes(), *products.routes(), *docs_routes()],
        middleware=[Middleware(ObservabilityMiddleware, metrics=metrics)],
        exception_handlers={
            Problem: errors.problem_handler,
            DomainError: errors.domain_handler,
            HTTPException: errors.http_handler,
            Exception: errors.unexpected_handler,
        },
        lifespan=lifespan,
    )
