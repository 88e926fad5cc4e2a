"""Trace ids for the SDK that keep a request's own: imported only when tracing is on."""

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from cme_adapters.tracing import ROOT_TRACE_ID


class RequestTraceIds(RandomIdGenerator):
    """Random ids, except that a root span started while ROOT_TRACE_ID is set takes that trace
    id: the one its request's sampling was decided on and its log lines already carry.
    """

    def generate_trace_id(self) -> int:
        return ROOT_TRACE_ID.get() or super().generate_trace_id()
