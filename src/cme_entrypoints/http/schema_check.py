"""Serve a database only at this code's schema or a newer one; behind it, 503 'run cme migrate'."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cme_adapters.sql.revisions import CodeRevisions
from cme_domain.errors import StorageUnavailable
from cme_entrypoints.http import errors
from cme_entrypoints.http.problems import Problem
from cme_entrypoints.http.routing import in_api
from cme_entrypoints.http.security import route_path

log = logging.getLogger("cme")

# A database that is down must not hold start-up for the pool's whole connection timeout.
START_CHECK_SECONDS: Final = 2.0


@attrs.define
class SchemaCheck:
    """Reads the database's revision until it is at or ahead of the code's, then never again."""

    read_revision: Callable[[], Awaitable[str | None]]
    code: CodeRevisions
    # Names why the database cannot be reached (the pool only says it timed out); None: unknown.
    diagnose: Callable[[], Awaitable[str | None]] | None = None
    ready: bool = False

    async def verify(self) -> None:
        """Return once the schema can be served; raise a 503 Problem while it is behind.

        StorageUnavailable passes through: an unreachable database has a 503 of its own.
        """
        if self.ready:
            return
        revision = await self.read_revision()
        if self.code.is_behind(revision):
            at = f"at revision {revision}" if revision else "not migrated"
            raise Problem(
                503,
                f"the database schema is {at}; this release needs {self.code.head}: "
                "run cme migrate",
                slug="schema-behind",
                headers={"Retry-After": "10"},
            )
        self.ready = True

    async def at_start(self) -> None:
        """One line when start-up finds the database unusable; serving starts all the same."""
        try:
            await asyncio.wait_for(self.verify(), START_CHECK_SECONDS)
        except (StorageUnavailable, TimeoutError) as error:
            cause = (await self.diagnose() if self.diagnose else None) or str(error)
            cause = cause or f"no answer within {START_CHECK_SECONDS} s"
            log.warning("database not reachable at start-up, answering 503 until it is: %s", cause)
        except Problem as problem:
            log.error("%s", problem.detail)


class SchemaGate:
    """Answers 503 on the product routes until the schema check has passed once."""

    def __init__(self, app: ASGIApp, check: SchemaCheck) -> None:
        self.app = app
        self._check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._check.ready or scope["type"] != "http" or not _gated(scope):
            await self.app(scope, receive, send)
            return
        try:
            await self._check.verify()
        except Problem as problem:
            response = await errors.problem_handler(Request(scope), problem)
        except StorageUnavailable as error:
            response = await errors.domain_handler(Request(scope), error)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def _gated(scope: Scope) -> bool:
    return in_api(route_path(scope))
