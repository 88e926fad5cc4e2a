"""Reading request bodies: content type, size limit, and JSON that keeps decimals exact."""

import json
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from starlette.requests import Request

from cme_entrypoints.http.problems import Problem

MAX_BODY_BYTES: Final = 64 * 1024
MAX_JSON_DEPTH: Final = 32
# Longer integer literals stay Decimal: int() of a long digit string costs quadratic time and
# raises past 4300 digits, while every integer field we accept fits in far fewer digits.
MAX_INT_DIGITS: Final = 20


async def read_json_object(request: Request, *media_types: str) -> dict[str, Any]:
    """The body as a JSON object, or a Problem with the status the contract gives."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in media_types:
        raise Problem(
            415,
            f"send the body as {' or '.join(media_types)}",
            slug="unsupported-media-type",
            headers={"Accept": ", ".join(media_types)},
        )
    raw = await _read_limited(request)
    try:
        value = json.loads(
            raw, parse_float=Decimal, parse_int=_json_int, parse_constant=_reject_constant
        )
    except InvalidOperation:
        raise Problem(
            422, "a number in the body has an exponent out of range", slug="validation-error"
        ) from None
    except (ValueError, RecursionError):
        raise Problem(400, "the body is not valid JSON", slug="malformed-json") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise Problem(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", slug="too-deep")
    if not isinstance(value, dict):
        raise Problem(422, "the body must be a JSON object", slug="validation-error")
    return value


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(chunks)


def _too_large() -> Problem:
    return Problem(413, f"the body is larger than {MAX_BODY_BYTES} bytes", slug="too-large")


def _json_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= MAX_INT_DIGITS else Decimal(text)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    return max((_depth(child, level + 1) for child in children), default=level)
