"""The client `cme import` sends batches with: retries, rate-limit pacing, and the answers that
end a run because every batch would get them."""

import hashlib
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from typing import Any, Final

import orjson

# A batch that met a network error, a 503 or a transient 409 is sent again, same key.
ATTEMPTS: Final = 3
# A batch whose earlier write was since deleted in part is sent again under the key of the
# next generation (a run that wrote it again made that one); past this many, something else
# keeps deleting what the feed writes, and the batch is reported.
GENERATIONS: Final = 20
# 429s are waited out, not counted as attempts; this many in a row means the server never
# lets the batch through.
RATE_LIMITED_MAX: Final = 100
WAIT_MAX: Final = 300.0
_TRANSIENT_409: Final = frozenset({"idempotency-in-progress", "contention"})
# RateLimit: "batch";r=0;t=42 (draft-ietf-httpapi-ratelimit-headers): none left for t s.
_STATE: Final = re.compile(r";\s*r=(\d+)\s*;\s*t=(\d+)")

Answer = tuple[int, bool, Any]  # status (0: no answer), replayed, the body


class Stop(Exception):
    """An answer every batch would get (bad key, no server, wrong --url): the run ends."""


class BatchClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        mode: str,
        notify: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = base_url
        self._url = f"{base_url}/products/batch"
        self._api_key = api_key
        self._mode = mode
        self._notify = notify
        self._sleep = sleep
        self._ready_at = 0.0

    def send(self, products: list[bytes]) -> Answer:
        """The status, whether it is a replay of an earlier run's batch, and the answer."""
        mode = orjson.dumps(self._mode)
        body = b'{"mode":' + mode + b',"products":[' + b",".join(products) + b"]}"
        # The same batch gets the same key: sent again, it is answered, not rewritten.
        key = "import-" + hashlib.sha256(body).hexdigest()
        for generation in range(GENERATIONS):
            answer = self._post(body, key if generation == 0 else f"{key}-{generation}")
            if answer[0] != 409 or slug(answer[2]) != "idempotent-product-deleted":
                return answer
            # The record answers for products deleted since: the file says they exist, so the
            # batch is written again, under a key that a later run will find answered.
        return answer

    def _post(self, body: bytes, key: str) -> Answer:
        headers = {"Content-Type": "application/json", "X-API-Key": self._api_key}
        headers["Idempotency-Key"] = key
        attempt, limited = 1, 0
        while True:
            self._pace()
            # The URL is the operator's own --url: http(s) to the service they name.
            request = urllib.request.Request(self._url, body, headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(  # noqa: S310  # nosec B310  # the operator's --url
                    request, timeout=120
                ) as response:
                    self._note_quota(response.headers)
                    replayed = response.headers.get("Idempotent-Replayed") == "true"
                    return response.status, replayed, orjson.loads(response.read())
            except urllib.error.HTTPError as error:
                answer = _json_or_text(error.read())
                self._note_quota(error.headers)
                self._stop_on(error.code, answer)
                wait = _seconds(error.headers.get("Retry-After"), attempt)
                if error.code == 429 and limited < RATE_LIMITED_MAX:
                    self._notify(f"rate limited ({detail(answer)}): waiting {wait:g} s")
                    self._sleep(wait)
                    limited += 1
                    continue
                transient = error.code == 503 or (
                    error.code == 409 and slug(answer) in _TRANSIENT_409
                )
                if not transient or attempt == ATTEMPTS:
                    return error.code, False, answer
                reason = f"HTTP {error.code}: {detail(answer)}"
            except (urllib.error.URLError, OSError) as error:
                cause = getattr(error, "reason", error)
                if isinstance(cause, ConnectionRefusedError):
                    raise Stop(
                        f"cannot connect to {self._base}: connection refused;"
                        " is the service running there, and is --url right?"
                    ) from None
                if attempt == ATTEMPTS:
                    return 0, False, {"detail": f"no answer from {self._url}: {cause}"}
                reason, wait = f"no answer ({cause})", float(attempt)
            self._notify(f"{reason}; sending it again in {wait:g} s ({attempt + 1} of {ATTEMPTS})")
            self._sleep(wait)
            attempt += 1

    def _stop_on(self, status: int, answer: Any) -> None:
        hints = {
            401: "check --api-key or CME_API_KEY",
            403: "the key or token needs the products:write scope",
            404: f"--url is the service's root (such as http://127.0.0.1:5000), not {self._base}",
        }
        if status in hints:
            raise Stop(f"HTTP {status} from {self._url}: {detail(answer)}; {hints[status]}")

    def _note_quota(self, headers: Message) -> None:
        """When the RateLimit field says none is left, wait its t seconds before the next."""
        state = _STATE.search(headers.get("RateLimit") or "")
        if state and int(state[1]) == 0:
            self._ready_at = time.monotonic() + min(int(state[2]), WAIT_MAX)

    def _pace(self) -> None:
        wait = self._ready_at - time.monotonic()
        if wait > 0:
            self._notify(f"the rate limit's quota is spent: waiting {wait:.0f} s")
            self._sleep(wait)


def _seconds(retry_after: str | None, default: int) -> float:
    if retry_after and retry_after.strip().isascii() and retry_after.strip().isdigit():
        return min(float(retry_after.strip()), WAIT_MAX)
    return float(default)


def _json_or_text(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"detail": raw.decode("utf-8", "replace")[:200]}


def detail(answer: Any) -> str:
    return str(answer.get("detail", "")) if isinstance(answer, dict) else str(answer)


def slug(answer: Any) -> str:
    kind = answer.get("type") if isinstance(answer, dict) else None
    return kind.removeprefix("urn:cme:problem:") if isinstance(kind, str) else ""
