"""A request's trace and span ids, read from W3C traceparent or X-Cloud-Trace-Context, or new."""

import os
import re
from typing import Final, NamedTuple

from starlette.types import Scope

REQUEST_ID_HEADER: Final = b"x-request-id"
_VALID_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# W3C Trace Context, level 1: version-traceid-parentid-flags; later versions may append fields.
_TRACEPARENT: Final = re.compile(
    rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?"
)
# Google's load balancers: TRACE_ID/SPAN_ID;o=OPTIONS, the span id in decimal.
_CLOUD_TRACE: Final = re.compile(rb"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([0-9]{1,3}))?")
_ZERO_TRACE: Final = b"0" * 32
_ZERO_SPAN: Final = b"0" * 16


class RequestContext(NamedTuple):
    """What every log line written while serving one request carries."""

    request_id: str
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits: this server's span for the request
    sampled: bool
    parent_span_id: str | None  # the caller's span, when it sent one


def from_scope(scope: Scope) -> RequestContext:
    """One pass over the headers; a fresh trace when neither trace header is usable."""
    request_id = traceparent = cloud = None
    for key, value in scope["headers"]:
        if key == REQUEST_ID_HEADER and _VALID_REQUEST_ID.fullmatch(value):
            request_id = value.decode("ascii")
        elif key == b"traceparent":
            traceparent = value
        elif key == b"x-cloud-trace-context":
            cloud = value
    fresh = os.urandom(24).hex()
    span_id = fresh[32:]
    parent = _from_traceparent(traceparent) if traceparent is not None else None
    if parent is None and cloud is not None:
        parent = _from_cloud_trace(cloud)
    if request_id is None:
        request_id = fresh[:32]
    if parent is None:
        return RequestContext(request_id, fresh[:32], span_id, False, None)
    trace_id, parent_span, sampled = parent
    return RequestContext(request_id, trace_id, span_id, sampled, parent_span)


def _from_traceparent(value: bytes) -> tuple[str, str | None, bool] | None:
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == _ZERO_SPAN:
        return None
    return trace_id.decode(), span_id.decode(), bool(int(flags, 16) & 1)


def _from_cloud_trace(value: bytes) -> tuple[str, str | None, bool] | None:
    match = _CLOUD_TRACE.fullmatch(value.strip())
    if match is None or match.group(1) == _ZERO_TRACE:
        return None
    trace_id, span, options = match.groups()
    span_id = None
    if span is not None and 0 < int(span) < 2**64:
        span_id = f"{int(span):016x}"
    return trace_id.decode().lower(), span_id, options is not None and int(options) & 1 == 1
