"""A client span per database call, under the request's server span."""

import os
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Final

from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceState
from opentelemetry.util.types import AttributeValue

from cme_adapters.telemetry.tracing import CURRENT_SPAN, SAMPLED, OpenSpan, Traces

DB_SCOPE: Final = InstrumentationScope("cme.db")
_NO_SPAN: Final = nullcontext()


class DatabaseSpans:
    """A client span per database call, a child of the request's server span:

    `with spans("SELECT", "products"): await cursor.execute(...)`. Outside a sampled request
    (one the sampler dropped, a statement run outside any request) it returns one shared
    do-nothing context manager.
    """

    def __init__(self, traces: Traces, system: str) -> None:
        self._traces = traces
        self._system = system

    def __call__(self, operation: str, collection: str = "") -> AbstractContextManager[object]:
        parent = CURRENT_SPAN.get()
        if parent is None or parent.ended:
            return _NO_SPAN
        name = f"{operation} {collection}" if collection else operation
        attributes: dict[str, AttributeValue] = {
            "db.system": self._system,  # the name before semantic conventions 1.26
            "db.system.name": self._system,
            "db.operation.name": operation,
        }
        if collection:
            attributes["db.collection.name"] = collection
        ids = parent.context
        trace_state: TraceState | None = ids.trace_state
        if self._traces.rule is None:
            decided = self._traces.ask(ids, ids.trace_id, name, SpanKind.CLIENT, attributes)
            if decided is None:
                return _NO_SPAN
            attributes, trace_state = decided
        span = OpenSpan(
            name,
            SpanKind.CLIENT,
            SpanContext(ids.trace_id, _span_id(), False, SAMPLED, trace_state),
            ids,
            attributes,
            DB_SCOPE,
        )
        return _Statement(self._traces, span)


def _span_id() -> int:
    """64 random bits, never the invalid id 0 (from os.urandom, as the request's own ids)."""
    span_id = 0
    while span_id == 0:
        span_id = int.from_bytes(os.urandom(8), "big")
    return span_id


class _Statement:
    """A statement's span as a context manager: it records an exception escaping the block,
    then ends. The span is not made current, as it has no children."""

    __slots__ = ("_span", "_traces")

    def __init__(self, traces: Traces, span: OpenSpan) -> None:
        self._traces = traces
        self._span = span

    def __enter__(self) -> OpenSpan:
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # As the SDK's use_span: an Exception, not a cancellation or an exit, is an error.
        if isinstance(exc, Exception):
            self._span.record_exception(exc)
        self._traces.end(self._span)


def database_spans(traces: Traces | None, system: str) -> DatabaseSpans | None:
    """Spans for database calls when tracing is on; None lets the adapter skip even the call."""
    return DatabaseSpans(traces, system) if traces is not None else None
