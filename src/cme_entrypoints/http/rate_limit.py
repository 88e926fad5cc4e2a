"""Per-caller rate limits on the API: RateLimit fields on every answer, 429 beyond the limit."""

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cme_adapters.rate_limit import Limiter, Rate, RateLimits
from cme_entrypoints.http.auth import READ_METHODS, WRITE_METHODS, caller_key
from cme_entrypoints.http.problems import Problem, problem_json, raw_headers
from cme_entrypoints.http.routing import in_api
from cme_entrypoints.http.security import route_path

BATCH_PATH: Final = "/products/batch"
POLICY_HEADER: Final = b"ratelimit-policy"
STATE_HEADER: Final = b"ratelimit"
# The bucket is named "batch" in the RateLimit fields; a sentence counts batches.
_PLURALS: Final = {"batch": "batches"}


class RateLimitMiddleware:
    """Token bucket per caller and kind (reads, writes, batch): the authenticated subject when
    the guard in front established one, else the client address. A batch of up to 1000
    products draws on its own bucket, not the writes'. Everything outside the API (health,
    readiness, metrics, docs) is never limited."""

    def __init__(self, app: ASGIApp, limiter: Limiter, limits: RateLimits) -> None:
        self.app = app
        self.limiter = limiter
        # Built once: per request only the RateLimit field's numbers change.
        self._kinds: dict[str, tuple[str, Rate, bytes]] = {}
        for method in READ_METHODS | WRITE_METHODS:
            kind = "reads" if method in READ_METHODS else "writes"
            rate = getattr(limits, kind)
            if rate is not None:
                policy = f'"{kind}";q={rate.quota};w={rate.window}'.encode()
                self._kinds[method] = (kind, rate, policy)
        self._batch: tuple[str, Rate, bytes] | None = None
        if limits.batch is not None:
            batch = limits.batch
            self._batch = ("batch", batch, f'"batch";q={batch.quota};w={batch.window}'.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        limited = self._kinds.get(scope["method"])
        if scope["method"] == "POST" and path == BATCH_PATH:
            limited = self._batch
        if not limited or not in_api(path):
            await self.app(scope, receive, send)
            return
        kind, rate, policy = limited
        decision = await self.limiter.take(f"{kind}:{caller_key(scope)}", rate)
        fields = [
            (POLICY_HEADER, policy),
            (STATE_HEADER, b'"%s";r=%d;t=%d' % (kind.encode(), decision.remaining, decision.reset)),
        ]
        if not decision.allowed:
            await _too_many(scope, send, fields, decision.retry_after, kind)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *fields]
            await send(message)

        await self.app(scope, receive, send_with_fields)


async def _too_many(
    scope: Scope, send: Send, fields: list[tuple[bytes, bytes]], retry_after: int, kind: str
) -> None:
    problem = Problem(
        429,
        f"too many {_PLURALS.get(kind, kind)} from this caller; retry after {retry_after} s",
        slug="rate-limited",
        headers={"Retry-After": str(retry_after)},
    )
    body = problem_json(problem, scope["path"])
    headers = [*raw_headers(problem, body), *fields]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
