"""OTLP/protobuf for a batch of spans, written straight to bytes: imported only when tracing
is on.

The exporter's own encoder builds a protobuf object per span, attribute and value and hashes
the resource (a JSON dump) per span: about 23 us a span on the export thread, which holds
the GIL away from the event loop. The same message written directly: under 7 us a span
(bench/tracing_cost.py). A batch with anything but plain spans -- events (a recorded
exception), links, attribute values other than str, bool, int and float -- goes to the
exporter's encoder unchanged. The result is the same ExportTraceServiceRequest
(tests/unit/test_otlp_spans.py decodes both and compares them).
"""

import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.exporter.otlp.proto.http import trace_exporter
from opentelemetry.sdk.trace import ReadableSpan

_DOUBLE: Final = struct.Struct("<d").pack
_FIXED64: Final = struct.Struct("<Q").pack
_REMOTE_PARENT: Final = 0x300  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE | _IS_REMOTE
_LOCAL_PARENT: Final = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE
_WRITTEN: Final[dict[tuple[int, str, type, object], bytes]] = {}
_WRITTEN_MAX: Final = 4096
# Longer strings are written each time: a client's unknown paths would otherwise fill the
# cache with 4096 values of any length (15 KB paths held 100 MiB in one worker).
_WRITTEN_LENGTH_MAX: Final = 128
_PLAIN: Final = frozenset((str, bool, int, float))


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(key: int, payload: bytes) -> bytes:
    """A length-delimited field: key is (number << 3) | 2, below 0x80 for every field here."""
    size = len(payload)
    if size < 0x80:
        return bytes((key, size)) + payload
    return bytes((key,)) + _varint(size) + payload


def _key_value(key: str, value: object) -> bytes:
    if isinstance(value, str):
        any_value = _field(0x0A, value.encode())
    elif isinstance(value, bool):
        any_value = b"\x10\x01" if value else b"\x10\x00"
    elif isinstance(value, int):
        any_value = b"\x18" + _varint(value)
    else:
        any_value = b"\x21" + _DOUBLE(value)
    return _field(0x0A, key.encode()) + _field(0x12, any_value)


def _attributes(key: int, attributes: Mapping[str, object] | None) -> bytes:
    if not attributes:
        return b""
    out = []
    for name, value in attributes.items():
        if type(value) not in _PLAIN:
            raise _NotPlain
        if type(value) is str and len(value) > _WRITTEN_LENGTH_MAX:
            out.append(_field(key, _key_value(name, value)))  # a path the client chose
            continue
        # Most attributes repeat from span to span (the method, the route, db.*): each is
        # written once. The type is in the key, as True == 1 and 1 == 1.0.
        cached = _WRITTEN.get((key, name, type(value), value))
        if cached is None:
            if len(_WRITTEN) >= _WRITTEN_MAX:
                _WRITTEN.clear()
            cached = _field(key, _key_value(name, value))
            _WRITTEN[(key, name, type(value), value)] = cached
        out.append(cached)
    return b"".join(out)


class _NotPlain(Exception):
    """A span this encoder leaves to the exporter's."""


def _span(span: ReadableSpan) -> bytes:
    if span.events or span.links:
        raise _NotPlain
    context = span.context
    parent = span.parent
    assert context is not None  # every SDK span has one
    assert span.start_time is not None  # and ended
    assert span.end_time is not None
    out = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08"]
    out.append(context.span_id.to_bytes(8, "big"))
    if context.trace_state:
        state = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
        out.append(_field(0x1A, state.encode()))
    if parent is not None:
        out += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
    out.append(_field(0x2A, span.name.encode()))
    out += (b"\x30", _varint(span.kind.value + 1))  # the SDK's kinds are OTLP's minus one
    out += (b"\x39", _FIXED64(span.start_time), b"\x41", _FIXED64(span.end_time))
    out.append(_attributes(0x4A, span.attributes))
    if span.dropped_attributes:
        out += (b"\x50", _varint(span.dropped_attributes))
    status = span.status
    message = _field(0x12, status.description.encode()) if status.description else b""
    code = b"\x18" + _varint(status.status_code.value) if status.status_code.value else b""
    out.append(_field(0x7A, message + code))
    flags = _REMOTE_PARENT if parent is not None and parent.is_remote else _LOCAL_PARENT
    out += (b"\x85\x01", flags.to_bytes(4, "little"))
    return b"".join(out)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    out = _field(0x0A, scope.name.encode()) if scope.name else b""
    if scope.version:
        out += _field(0x12, scope.version.encode())
    return out + _attributes(0x1A, scope.attributes)


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """A serialised ExportTraceServiceRequest: the spans grouped by resource, then by scope."""
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        _resource, scopes = grouped.setdefault(id(span.resource), (span.resource, {}))
        scope = span.instrumentation_scope
        scopes.setdefault(id(scope), (scope, []))[1].append(_span(span))
    out = []
    for resource, scopes in grouped.values():
        body = _field(0x0A, _attributes(0x0A, resource.attributes))
        for scope, encoded in scopes.values():
            scope_spans = _field(0x0A, _scope(scope))
            scope_spans += b"".join(_field(0x12, span) for span in encoded)
            if scope is not None and scope.schema_url:
                scope_spans += _field(0x1A, scope.schema_url.encode())
            body += _field(0x12, scope_spans)
        if resource.schema_url:
            body += _field(0x1A, resource.schema_url.encode())
        out.append(_field(0x0A, body))
    return b"".join(out)


class _Encoded:
    """What the exporter asks of its encoder's result."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def SerializePartialToString(self) -> bytes:  # the protobuf method's name
        return self._data


def encode_spans(spans: Sequence[ReadableSpan]) -> Any:
    try:
        return _Encoded(encode(spans))
    except _NotPlain:
        return sdk_encode(spans)


def install() -> None:
    """Make the OTLP/HTTP span exporter encode with encode_spans: the name its export looks
    up at each call, which keeps its size limit, retries, metrics and compression as they are.
    """
    setattr(trace_exporter, "encode_spans", encode_spans)  # noqa: B010
