"""The WebhookSender port on httpcore: one signed POST, to addresses the policy allows."""

import asyncio
import ssl
import time
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, urlsplit

import httpcore
from standardwebhooks.webhooks import Webhook

from cme_adapters.webhooks.addresses import AddressPolicy, TargetRefused
from cme_adapters.webhooks.backend import GuardedBackend
from cme_adapters.webhooks.failures import describe, one_line
from cme_domain.webhook_ports import Answer
from cme_domain.webhooks import DELIVERY_TIMEOUT_SECONDS

BODY_LIMIT: Final = 64 * 1024
_URL_SAFE: Final = "/%:@!$&'()*+,;=?~"
# What an endpoint, or the way to it, can make go wrong. ValueError: a port out of range, a
# host IDNA cannot encode.
_FAILURES: Final = (
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    OSError,
    ValueError,
)


class HttpWebhookSender:
    """POSTs with the Standard Webhooks headers; no redirects, no retries, bounded in time."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        timeout: float = DELIVERY_TIMEOUT_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._timeout = timeout
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(),
            network_backend=GuardedBackend(policy),
            max_connections=100,  # WEBHOOKS_MAX endpoints, each delivered one at a time
            max_keepalive_connections=20,
            keepalive_expiry=30.0,
        )

    async def send(self, url: str, secret: str, message_id: str, body: bytes) -> Answer:
        started = time.perf_counter()
        headers = _signed_headers(secret, message_id, body)  # a bad secret is ours: it raises
        phases = dict.fromkeys(("connect", "read", "write", "pool"), self._timeout)
        status: int | None = None
        try:
            target, authority = self._target(url)
            # Each phase is bounded by httpcore; all of them together by the overall timeout.
            async with asyncio.timeout(self._timeout):
                async with self._pool.stream(
                    "POST",
                    target,
                    headers=[*headers, ("host", authority)],
                    content=body,
                    extensions={"timeout": phases},
                ) as response:
                    status = response.status
                    await _discard_body(response)
        except TargetRefused as refused:
            return Answer(None, one_line(f"refused: {refused.reason}"), _since(started))
        except _FAILURES as error:
            # Once the status has come, a body that breaks off or drags on changes nothing.
            if status is None:
                return Answer(None, describe(error, self._timeout), _since(started))
        return Answer(status, None, _since(started))

    async def close(self) -> None:
        await self._pool.aclose()

    def _target(self, url: str) -> tuple[httpcore.URL, str]:
        # Built from urlsplit, not httpcore's own urlparse: that drops ;params from the path
        # and leaves IPv6 hosts unbracketed in the Host header.
        parts = urlsplit(url)
        refusal = self._policy.scheme_refusal(parts.scheme)
        if refusal or not parts.hostname:
            raise TargetRefused(refusal or "must name a host")
        host = parts.hostname.encode("idna").decode("ascii")
        target = quote(parts.path or "/", safe=_URL_SAFE)
        if parts.query:
            target += "?" + quote(parts.query, safe=_URL_SAFE)
        authority = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            authority += f":{parts.port}"
        url_parts = httpcore.URL(scheme=parts.scheme, host=host, port=parts.port, target=target)
        return url_parts, authority


def _signed_headers(secret: str, message_id: str, body: bytes) -> list[tuple[str, str]]:
    timestamp = int(time.time())
    # The signature and the header must name the same whole second.
    signed_at = datetime.fromtimestamp(timestamp, UTC)
    signature = Webhook(secret).sign(message_id, signed_at, body.decode())
    return [
        ("content-type", "application/json"),
        ("user-agent", "cme-webhooks"),
        ("webhook-id", message_id),
        ("webhook-timestamp", str(timestamp)),
        ("webhook-signature", signature),
    ]


async def _discard_body(response: httpcore.Response) -> None:
    # Read a little, so a short answer leaves the connection reusable; never without bound.
    read = 0
    async for chunk in response.aiter_stream():
        read += len(chunk)
        if read >= BODY_LIMIT:
            break


def _since(started: float) -> float:
    return time.perf_counter() - started
