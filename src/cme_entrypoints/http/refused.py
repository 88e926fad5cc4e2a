"""uvicorn's HTTP protocol, with problem+json, a count and a log line for what it refuses."""

from typing import Final

from cme_entrypoints.http.head_limit import MAX_HEAD_BYTES, BoundedHttpToolsProtocol
from cme_entrypoints.http.middleware import REJECTED_REQUEST
from cme_entrypoints.http.problems import Problem, closing_response
from cme_entrypoints.trace_context import REQUEST_ID_HEADER

# Methods httptools knows; anything else is counted under one label, as OpenTelemetry does.
_METHODS: Final = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)
OTHER_METHOD: Final = "_OTHER"
_LOGGED_PATH_CHARS: Final = 2048  # a refused head may hold a URL of any length
_BAD_REQUEST: Final = Problem(
    400, "the request is not valid HTTP/1.1 (request line, a header or its framing)"
)


class ObservedHttpToolsProtocol(BoundedHttpToolsProtocol):
    """Answers what the parser rejects (bad header, duplicate Content-Length, unknown method)
    with problem+json and the security headers instead of uvicorn's text/plain, and counts and
    logs it (path="unmatched") like any other request, 431s included."""

    def send_400_response(self, msg: str) -> None:
        status = 431 if self._head_bytes > MAX_HEAD_BYTES else 400
        method, path = self._request_line()
        report = self.app_state.get(REJECTED_REQUEST)
        request_id = report(method, path, status).request_id if report is not None else ""
        if status == 431:
            super().send_400_response(msg)
            return
        request_id_field = (REQUEST_ID_HEADER, request_id.encode())
        self.transport.write(
            closing_response(_BAD_REQUEST, *self.server_state.default_headers, request_id_field)
        )
        self.transport.close()

    def _request_line(self) -> tuple[str, str]:
        """As much of the request line as the parser took in: the URL follows the method."""
        url: bytes = getattr(self, "url", b"")
        if not url:
            return OTHER_METHOD, ""
        method = self.parser.get_method().decode("latin-1")
        path = url.partition(b"?")[0][:_LOGGED_PATH_CHARS].decode("latin-1")
        return (method if method in _METHODS else OTHER_METHOD), path
