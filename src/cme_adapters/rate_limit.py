"""Token buckets per caller: in this worker's memory, or shared by every worker through Redis."""

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs

log = logging.getLogger("cme.rate_limit")


@attrs.frozen
class Rate:
    """`quota` requests per `window` seconds for one caller, in bursts of up to `quota`."""

    quota: int
    window: int

    @property
    def per_second(self) -> float:
        return self.quota / self.window


@attrs.frozen
class RateLimits:
    """The rate of each kind of request; None switches that kind's limit off."""

    reads: Rate | None = Rate(6000, 60)
    writes: Rate | None = Rate(600, 60)
    batch: Rate | None = Rate(60, 60)  # POST /products/batch: up to 1000 products each


@attrs.frozen
class Decision:
    allowed: bool
    remaining: int  # whole requests the caller may still make at once
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until one more request is allowed; 0 when this one was


def decide(rate: Rate, tokens: float, allowed: bool) -> Decision:
    """What the headers say, from the tokens left after this request."""
    per_second = rate.per_second
    reset = math.ceil((rate.quota - tokens) / per_second)
    retry_after = 0 if allowed else max(1, math.ceil((1 - tokens) / per_second))
    return Decision(allowed, int(tokens), reset, retry_after)


class Limiter(Protocol):
    async def take(self, key: str, rate: Rate) -> Decision: ...

    async def close(self) -> None: ...


class LocalBuckets:
    """Buckets in this process: each worker limits on its own, nothing leaves the process."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        # key -> (tokens, when they were counted, when the bucket will be full again)
        self._buckets: dict[str, tuple[float, float, float]] = {}

    def take_now(self, key: str, rate: Rate) -> Decision:
        now = self._clock()
        found = self._buckets.get(key)
        if found is None:
            tokens = float(rate.quota)
            if len(self._buckets) >= self._max_keys:
                self._prune(now)
        else:
            tokens = min(rate.quota, found[0] + (now - found[1]) * rate.per_second)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now, now + (rate.quota - tokens) / rate.per_second)
        return decide(rate, tokens, allowed)

    async def take(self, key: str, rate: Rate) -> Decision:
        return self.take_now(key, rate)

    async def close(self) -> None:
        self._buckets.clear()

    def _prune(self, now: float) -> None:
        # A full bucket is the same as none. If every one is in use (callers from very many
        # addresses), forget them all rather than grow without bound.
        self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
        if len(self._buckets) >= self._max_keys:
            log.warning(
                "rate limit: %d callers at once; their buckets are reset", len(self._buckets)
            )
            self._buckets.clear()


# One atomic step per request, on Redis's clock so that pods' clocks need not agree. Tokens
# travel as strings: Redis would truncate a Lua number to an integer.
TAKE_SCRIPT: Final = """
local quota = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
if tokens == nil then
  tokens = quota
else
  tokens = math.min(quota, tokens + math.max(0, now - tonumber(state[2])) * per_second)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((quota - tokens) / per_second * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisBuckets:
    """Buckets in Redis, shared by every worker and pod. If Redis fails, each worker falls back
    to its own buckets (the limit then applies per worker) and tries Redis again after a pause:
    a Redis outage makes the limits looser for a while, never the API unavailable."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        fallback: LocalBuckets,
        pause_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._script = client.register_script(TAKE_SCRIPT)
        self._prefix = prefix
        self._fallback = fallback
        self._pause = pause_seconds
        self._clock = clock
        self._down_until = 0.0

    @classmethod
    def connect(cls, url: str, prefix: str, timeout: float = 0.25) -> "RedisBuckets":
        # Imported here: without REDIS_URL the service never loads the client.
        from redis.asyncio import Redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a slow Redis must not slow every request down
            health_check_interval=30,
        )
        return cls(client, prefix, LocalBuckets())

    async def take(self, key: str, rate: Rate) -> Decision:
        if self._clock() < self._down_until:
            return self._fallback.take_now(key, rate)
        try:
            allowed, tokens = await self._script(
                keys=[self._prefix + key], args=[rate.quota, repr(rate.per_second)]
            )
        except Exception as error:  # any Redis or network failure: limit locally instead
            self._down_until = self._clock() + self._pause
            log.warning(
                "rate limit: Redis unavailable (%s); limiting per worker for %.0f s",
                type(error).__name__,
                self._pause,
            )
            return self._fallback.take_now(key, rate)
        return decide(rate, float(tokens), allowed == 1)

    async def close(self) -> None:
        await self._client.aclose()
