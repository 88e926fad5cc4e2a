"""The HTTP protocol `cme serve` runs: deadlines for a request's head and body, a connection cap,
and a response's head sent with its body."""

import asyncio
import functools
from collections.abc import Callable
from typing import Final

from cme_entrypoints.http.problems import Problem, closing_response
from cme_entrypoints.http.refused import ObservedHttpToolsProtocol
from cme_entrypoints.settings import Settings

_HEAD_TIMEOUT: Final = closing_response(
    Problem(408, "the request line and headers did not arrive in time", slug="timeout")
)
_BODY_TIMEOUT: Final = closing_response(
    Problem(408, "the request body did not arrive in time", slug="timeout")
)
_TOO_MANY: Final = closing_response(
    Problem(
        503,
        "this server holds as many connections as it may; retry shortly",
        slug="too-many-connections",
        headers={"Retry-After": "1"},
    )
)


_REFUSED_LINGER_SECONDS: Final = 1.0
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"  # what uvicorn writes, before a head


class HeadWithBody:
    """The transport a request's cycle writes through, holding the response's head until the
    body's first write, the response's end or a close.

    uvicorn writes a head and its body in two calls, which uvloop sends at once: two send()
    calls and two segments for the client to read, for every response. It holds no reference
    to the cycle, which holds it: a reference cycle per request would be the collector's work.
    """

    __slots__ = ("_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head = b""
        self._held = False

    def write(self, data: bytes) -> None:
        # A cycle's first write is its response's head, but for a "100 Continue" before it.
        if not self._held and data != _CONTINUE:
            self._held = True
            self._head = data
            return
        if self._head:
            data, self._head = self._head + data, b""
        self._transport.write(data)

    def flush(self) -> None:
        if self._head:
            head, self._head = self._head, b""
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def finished(self, on_response: Callable[[], None]) -> Callable[[], None]:
        """The cycle's on_response: a response without a body write (HEAD, say) is sent first."""

        def flushed() -> None:
            self.flush()
            on_response()

        return flushed


@functools.cache
def _limits() -> tuple[float, float, int]:
    # Read once per worker process: uvicorn spawns workers, which re-read the environment.
    settings = Settings.from_env()
    return (
        settings.header_timeout_seconds,
        settings.body_timeout_seconds,
        settings.max_connections,
    )


class ServerProtocol(ObservedHttpToolsProtocol):
    """httptools with deadlines: a head must arrive within HEADER_TIMEOUT_SECONDS of its first
    byte (or of the connection), a body within BODY_TIMEOUT_SECONDS of its head, or the client
    gets 408 and the connection closes. Beyond MAX_CONNECTIONS a new connection gets 503 at once.

    uvicorn itself only times out idle keep-alive connections: a client that sends nothing, half
    a head or half a body would hold a connection, and its memory, for as long as it likes.
    """

    _deadline: asyncio.TimerHandle | None = None
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        head_timeout, _, max_connections = _limits()
        if len(self.connections) > max_connections:
            self._refuse(transport)
            return
        self._arm(head_timeout, self._head_timed_out)

    def _refuse(self, transport: asyncio.Transport) -> None:
        # Answer, stop writing, and drop whatever the client sends for a moment: closing at
        # once would reset the connection when its request arrives, and a reset can discard
        # the answer before the client reads it.
        self._refused = True
        transport.write(_TOO_MANY)
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(_REFUSED_LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a keep-alive connection's next request has begun
            self._arm(_limits()[0], self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # a new request's cycle
            out = HeadWithBody(self.transport)
            cycle.transport = out  # type: ignore[assignment]  # write, close and is_closing
            cycle.on_response = out.finished(cycle.on_response)
        self._arm(_limits()[1], self._body_timed_out)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, handler: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a request still being answered: that one first.
            self._arm(_limits()[0], self._head_timed_out)
            return
        self._close_with(_HEAD_TIMEOUT)

    def _body_timed_out(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            self._close_with(b"")
            return
        # The route is waiting for the body: it will see a disconnect, and its answer is
        # dropped; the client gets this 408 instead.
        cycle.disconnected = True
        cycle.message_event.set()
        self._close_with(_BODY_TIMEOUT)

    def _close_with(self, response: bytes) -> None:
        if self.transport.is_closing():
            return
        if response:
            self.transport.write(response)
        self.transport.close()
