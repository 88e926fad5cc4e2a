"""A webhook receiver on loopback for the suites: it keeps what arrives and answers as told."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import orjson
from standardwebhooks.webhooks import Webhook


@attrs.frozen
class Arrival:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    def verified(self, secret: str) -> Any:
        """The event, once its signature checks out with the standardwebhooks library."""
        Webhook(secret).verify(self.body, self.headers)
        return orjson.loads(self.body)


@attrs.define
class Receiver:
    url: str
    arrivals: list[Arrival] = attrs.Factory(list)
    # The statuses of the next answers, in order; once used up, every answer is `then`.
    script: list[int] = attrs.Factory(list)
    then: int = 204
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.arrivals.append(Arrival(headers, body, time.time()))
            return self.script.pop(0) if self.script else self.then

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Arrival]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.arrivals) >= count:
                    return list(self.arrivals)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"{len(self.arrivals)} of {count} deliveries within {timeout} s")


@contextmanager
def receiving(port: int = 0, receiver: Receiver | None = None) -> Iterator[Receiver]:
    """A receiver on a loopback port (a free one by default), for the block; pass the one a
    block before had to bring it back up where it was."""
    holder: list[Receiver] = [] if receiver is None else [receiver]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = holder[0].answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if not holder:
        holder.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
