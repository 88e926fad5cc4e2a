"""Reading request bodies: content type, size limit, and JSON that keeps decimals exact."""

import json
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import anyio
from starlette.requests import ClientDisconnect, Request

from cme_domain.errors import FieldErrors, InvalidProduct, shown_name
from cme_entrypoints.http.problems import Problem, invalid_fields

MAX_BODY_BYTES: Final = 64 * 1024
MAX_JSON_DEPTH: Final = 32
# Longer integer literals stay Decimal: int() of a long digit string costs quadratic time and
# raises past 4300 digits, while every integer field we accept fits in far fewer digits.
MAX_INT_DIGITS: Final = 20
# A \uD800-\uDFFF escape in the text; only then can a decoded string hold a lone surrogate
# (a valid pair decodes to one character), so most bodies skip the walk.
_LONE_SURROGATE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_CHAR: Final = re.compile("[\ud800-\udfff]")


async def read_json_object(
    request: Request, *media_types: str, limit: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """The body as a JSON object, or a Problem with the status the contract gives."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in media_types:
        raise Problem(
            415,
            f"send the body as {' or '.join(media_types)}",
            slug="unsupported-media-type",
            headers={"Accept": ", ".join(media_types)},
        )
    _check_encoding(request, media_types)
    raw = await _read_limited(request, limit)
    if len(raw) <= MAX_BODY_BYTES:
        return _decoded(raw)
    # A batch-sized body takes a good part of a second to decode: off the event loop, so that
    # the worker's other requests (/health among them) are answered meanwhile.
    return await anyio.to_thread.run_sync(_decoded, raw)


def _decoded(raw: bytes) -> dict[str, Any]:
    try:
        # RFC 8259: JSON between systems is UTF-8; json.loads(bytes) would also guess UTF-16/32.
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        detail = f"the body is not valid UTF-8 (byte {error.start + 1})"
        raise Problem(400, detail, slug="malformed-json") from None
    if not text.strip():
        raise Problem(400, "the body is empty: send a JSON object", slug="malformed-json")
    value = parse_json(text)
    if not isinstance(value, dict):
        raise Problem(422, "the body must be a JSON object", slug="validation-error")
    return value


def parse_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON text as the API reads it, or the Problem it answers; `cme import` checks each line
    of a feed with it, so that a line it sends is one the API can read."""
    try:
        value = json.loads(
            text, parse_float=Decimal, parse_int=_json_int, parse_constant=_reject_constant
        )
    except InvalidOperation:
        raise Problem(
            422, "a number in the body has an exponent out of range", slug="validation-error"
        ) from None
    except json.JSONDecodeError as error:
        # The decoder's own words name the syntax, never the body's text.
        detail = (
            f"the body is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        )
        raise Problem(400, detail, slug="malformed-json") from None
    except ValueError as error:
        raise Problem(400, f"the body is not valid JSON: {error}", slug="malformed-json") from None
    except RecursionError:
        raise _too_deep(max_depth) from None
    if _nested_deeper_than(max_depth, value):
        raise _too_deep(max_depth)
    if isinstance(value, dict) and _LONE_SURROGATE.search(text):
        _refuse_lone_surrogates(value)
    return value


def _check_encoding(request: Request, media_types: tuple[str, ...]) -> None:
    """415 for a compressed body (we decode none) or a charset other than UTF-8."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise Problem(
            415,
            "send the body uncompressed: no Content-Encoding is accepted",
            slug="unsupported-media-type",
            headers={"Accept-Encoding": "identity"},
        )
    _, _, params = request.headers.get("content-type", "").partition(";")
    for param in params.split(";"):
        name, _, charset = param.partition("=")
        if name.strip().lower() == "charset" and charset.strip().strip('"').lower() != "utf-8":
            raise Problem(
                415,
                "send the body as UTF-8 (RFC 8259)",
                slug="unsupported-media-type",
                headers={"Accept": ", ".join(media_types)},
            )


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks = bytearray()
    try:
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                raise _too_large(limit)
    except ClientDisconnect:
        # The connection went, or the server's body deadline closed it (protocol.py): the
        # client never sees this answer, but the access log and metrics get a 408, not a 500.
        raise Problem(408, "the body did not arrive in time", slug="timeout") from None
    return bytes(chunks)


def _too_deep(max_depth: int) -> Problem:
    return Problem(400, f"JSON nested deeper than {max_depth} levels", slug="too-deep")


def _too_large(limit: int) -> Problem:
    return Problem(413, f"the body is larger than {limit} bytes", slug="too-large")


def _json_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= MAX_INT_DIGITS else Decimal(text)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_NO_LONE_SURROGATE: Final = "must not contain a lone surrogate (U+D800 to U+DFFF)"


def _refuse_lone_surrogates(body: dict[str, Any]) -> None:
    """422 naming each field that holds a lone surrogate: no store can write one, and echoing
    one in an error would fail to encode."""
    errors = FieldErrors()
    for name, value in body.items():
        if _has_lone_surrogate(name):
            errors.add("(a field name)", _NO_LONE_SURROGATE)
        elif _has_lone_surrogate(value):
            errors.add(shown_name(name), _NO_LONE_SURROGATE)
    try:
        errors.raise_any()
    except InvalidProduct as error:
        raise invalid_fields(error) from None


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE_CHAR.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _nested_deeper_than(limit: int, value: Any) -> bool:
    """Level by level, so that a million scalars cost one pass and no call each."""
    level, containers = 1, [value]
    while containers:
        children = [c for v in containers for c in _children(v)]
        if children and level + 1 > limit:
            return True
        containers = [c for c in children if isinstance(c, dict | list)]
        level += 1
    return False


def _children(value: Any) -> Iterable[Any]:
    return value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
