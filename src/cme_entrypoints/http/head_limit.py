"""uvicorn's httptools protocol with a limit on the size of a request head."""

from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cme_entrypoints.http.problems import Problem, closing_response

MAX_HEAD_BYTES: Final = 16 * 1024  # request line and headers; h11's default limit too


class HeadTooLarge(Exception):
    pass


_HEAD_TOO_LARGE: Final = Problem(
    431,
    f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes",
    slug="headers-too-large",
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a limit on the request head: 431, then close.

    httptools buffers a request line and headers of any size (h11 stops at its
    h11_max_incomplete_event_size), so a client could make a worker hold gigabytes.
    """

    _in_head = True
    _head_bytes = 0  # received since the current request's head began

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # A head still incomplete: stop reading it once it is too large to be allowed.
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.send_400_response("")

    def on_headers_complete(self) -> None:
        self._in_head = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEAD_BYTES:
            # Raised inside a parser callback, uvicorn answers with send_400_response below.
            self._head_bytes = size
            raise HeadTooLarge
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        if self._head_bytes <= MAX_HEAD_BYTES:
            super().send_400_response(msg)
            return
        self.transport.write(closing_response(_HEAD_TOO_LARGE, *self.server_state.default_headers))
        self.transport.close()
