"""The sampler OTEL_TRACES_SAMPLER names, with the rule a request checks without asking it:
imported only when tracing is on."""

import logging
import os
from collections.abc import Callable
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

_EVERY_TRACE: Final = 1 << 64
_DEFAULT: Final = "parentbased_always_on"
_log = logging.getLogger(__name__)


class RatioRule:
    """A standard sampler's rule in a form a request checks without the SDK: keep the caller's
    flag (parent-based samplers, when there is a caller), else keep the trace when its id's low
    64 bits are below `bound`, as TraceIdRatioBased does.
    """

    __slots__ = ("bound", "follows_parent")

    def __init__(self, follows_parent: bool, bound: int) -> None:
        self.follows_parent = follows_parent
        self.bound = bound

    def sampled(self, trace_id: str, parent_sampled: bool | None) -> bool:
        if self.follows_parent and parent_sampled is not None:
            return parent_sampled
        return int(trace_id[16:], 16) < self.bound


def _ratio(follows_parent: bool) -> Callable[[float], tuple[Sampler, RatioRule]]:
    def build(rate: float) -> tuple[Sampler, RatioRule]:
        sampler = ParentBasedTraceIdRatio(rate) if follows_parent else TraceIdRatioBased(rate)
        return sampler, RatioRule(follows_parent, TraceIdRatioBased.get_bound_for_rate(rate))

    return build


_FIXED: Final[dict[str, tuple[Sampler, RatioRule]]] = {
    "always_on": (ALWAYS_ON, RatioRule(False, _EVERY_TRACE)),
    "always_off": (ALWAYS_OFF, RatioRule(False, 0)),
    "parentbased_always_on": (DEFAULT_ON, RatioRule(True, _EVERY_TRACE)),
    "parentbased_always_off": (DEFAULT_OFF, RatioRule(True, 0)),
}
_RATIOS: Final = {"traceidratio": _ratio(False), "parentbased_traceidratio": _ratio(True)}


def configured() -> tuple[Sampler, RatioRule]:
    """The sampler from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, read as the SDK's
    TracerProvider reads them (an unknown name is parentbased_always_on, a ratio that is not a
    number in [0, 1] is 1.0, each with a warning), built from the SDK's public classes.

    Built here rather than by the provider, so that its rule is known without reading it back
    out of the sampler (tests/unit/test_tracing.py holds the two readings equal).
    """
    name = os.environ.get("OTEL_TRACES_SAMPLER", _DEFAULT).lower()
    if name not in _FIXED and name not in _RATIOS:
        _log.warning(
            "OTEL_TRACES_SAMPLER=%s is not a sampler this service knows: %s", name, _DEFAULT
        )
        name = _DEFAULT
    if name in _FIXED:
        return _FIXED[name]
    try:
        return _RATIOS[name](float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "")))
    except ValueError:
        _log.warning("OTEL_TRACES_SAMPLER_ARG is not a ratio from 0 to 1: sampling every trace")
        return _RATIOS[name](1.0)
