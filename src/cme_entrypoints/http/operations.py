"""Operational routes: the index, liveness, readiness and metrics."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cme_domain.errors import StorageUnavailable
from cme_entrypoints.http.problems import Problem
from cme_entrypoints.http.representation import json_response

READINESS_TIMEOUT_SECONDS: Final = 2.0


@attrs.define
class OperationsRoutes:
    version: str
    ping_database: Callable[[], Awaitable[None]]
    render_metrics: Callable[[], tuple[bytes, str]]
    # Raises a 503 Problem while the schema is behind the code's (SchemaCheck.verify).
    check_schema: Callable[[], Awaitable[None]]
    # Where the operator published the manual (DOCS_URL); empty when it is not published.
    manual: str = ""
    shutting_down: bool = False

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/db-check", self.db_check, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    def turn_unready(self) -> None:
        self.shutting_down = True

    async def index(self, request: Request) -> Response:
        links = {
            "products": "/products",
            "health": "/health",
            "db_check": "/db-check",
            "metrics": "/metrics",
            "openapi": "/openapi.json",
            "docs": "/docs",
        }
        if self.manual:
            links["manual"] = self.manual
        return json_response({"name": "cme", "version": self.version, "links": links})

    async def health(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def db_check(self, request: Request) -> Response:
        if self.shutting_down:
            raise Problem(503, "the service is shutting down", slug="shutting-down")
        try:
            await asyncio.wait_for(self.ping_database(), READINESS_TIMEOUT_SECONDS)
            await asyncio.wait_for(self.check_schema(), READINESS_TIMEOUT_SECONDS)
        except (StorageUnavailable, TimeoutError):
            raise Problem(
                503,
                "the database is not reachable",
                slug="database-unavailable",
                headers={"Retry-After": "2"},
            ) from None
        return json_response({"status": "ok", "database": "reachable"})

    async def metrics(self, request: Request) -> Response:
        body, content_type = self.render_metrics()
        return Response(body, media_type=content_type)
