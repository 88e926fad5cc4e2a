"""What lets a request decide its sampling on its logged ids without asking the SDK's sampler:
imported only when tracing is on."""

import re
from typing import Final

from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)

_RATE: Final = re.compile(r"TraceIdRatioBased\{([^}]*)\}")
_EVERY_TRACE: Final = 1 << 64


class RatioRule:
    """The rule of the samplers OTEL_TRACES_SAMPLER names, in a form a request checks without
    the SDK: keep the caller's flag (parent-based samplers, when there is a caller), else keep
    the trace when its id's low 64 bits are below `bound`, as TraceIdRatioBased does.
    """

    __slots__ = ("bound", "follows_parent")

    def __init__(self, follows_parent: bool, bound: int) -> None:
        self.follows_parent = follows_parent
        self.bound = bound

    def sampled(self, trace_id: str, parent_sampled: bool | None) -> bool:
        if self.follows_parent and parent_sampled is not None:
            return parent_sampled
        return int(trace_id[16:], 16) < self.bound


def ratio_rule(sampler: Sampler) -> RatioRule | None:
    """The sampler's rule when it is one of the standard six, recognised by class and
    description; None for any other (a sampler from a plugin), which is then asked itself.
    """
    description = sampler.get_description()
    known: dict[Sampler, RatioRule] = {
        ALWAYS_ON: RatioRule(False, _EVERY_TRACE),
        ALWAYS_OFF: RatioRule(False, 0),
        DEFAULT_ON: RatioRule(True, _EVERY_TRACE),
        DEFAULT_OFF: RatioRule(True, 0),
    }
    rate = _RATE.search(description)
    if rate is not None:
        try:
            ratio = float(rate.group(1))
        except ValueError:
            return None
        bound = TraceIdRatioBased.get_bound_for_rate(ratio)
        known[TraceIdRatioBased(ratio)] = RatioRule(False, bound)
        known[ParentBasedTraceIdRatio(ratio)] = RatioRule(True, bound)
    for candidate, rule in known.items():
        if type(candidate) is type(sampler) and candidate.get_description() == description:
            return rule
    return None
