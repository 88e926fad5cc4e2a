"""RFC 9457 problem details: the one shape every error response takes."""

from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson
from starlette.responses import Response

from cme_domain.errors import InvalidProduct
from cme_entrypoints.http.headers import API_HEADERS

PROBLEM_JSON: Final = "application/problem+json"

TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """Raised anywhere in the HTTP layer; rendered as problem+json by the app's handler."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        errors: Iterable[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        unlisted_errors: int = 0,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = list(errors)
        self.unlisted_errors = unlisted_errors
        self.headers = dict(headers or {})
        # Members of the problem type's own (RFC 9457 section 3.2), such as what is available.
        self.extensions = dict(extensions or {})


def problem_type(status: int, slug: str | None = None) -> str:
    """One namespace for every problem type: the slug, or else the status's title."""
    name = slug or "-".join(TITLES.get(status, "Error").lower().split())
    return f"urn:cme:problem:{name}"


def problem_json(problem: Problem, instance: str | None = None) -> bytes:
    """The one problem+json body, whichever layer answers: a route, a middleware, the protocol."""
    body: dict[str, Any] = {
        "type": problem_type(problem.status, problem.slug),
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
    }
    if instance is not None:
        body["instance"] = instance
    if problem.errors:
        body["errors"] = problem.errors
    if problem.unlisted_errors:
        body["unlisted_errors"] = problem.unlisted_errors
    body.update(problem.extensions)
    return orjson.dumps(body)


def render(problem: Problem, instance: str) -> Response:
    headers = {"Cache-Control": "no-store", **problem.headers}
    return Response(
        problem_json(problem, instance), problem.status, headers, media_type=PROBLEM_JSON
    )


def raw_headers(problem: Problem, body: bytes) -> list[tuple[bytes, bytes]]:
    """A problem response's headers as ASGI and the protocol write them."""
    return [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", b"%d" % len(body)),
        (b"cache-control", b"no-store"),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in problem.headers.items()
        ),
    ]


def closing_response(problem: Problem, *fields: tuple[bytes, bytes]) -> bytes:
    """A whole HTTP/1.1 response for what the protocol refuses before any app runs, with the
    security headers every response carries; the connection closes after it."""
    body = problem_json(problem)
    head = [b"HTTP/1.1 %d %s\r\n" % (problem.status, TITLES[problem.status].encode())]
    head += [
        name + b": " + value + b"\r\n"
        for name, value in (*fields, *raw_headers(problem, body), *API_HEADERS)
    ]
    head.append(b"connection: close\r\n\r\n")
    return b"".join([*head, body])


def invalid_fields(error: InvalidProduct) -> Problem:
    """The 422 for invalid fields: the listed errors, and how many more were found."""
    errors = [{"field": e.field, "message": e.message} for e in error.errors]
    detail = "one or more fields are not valid"
    if error.unlisted:
        found = len(errors) + error.unlisted
        detail = f"{found} fields are not valid; the first {len(errors)} are listed"
    return Problem(
        422, detail, slug="validation-error", errors=errors, unlisted_errors=error.unlisted
    )
