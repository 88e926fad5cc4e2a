"""On SIGTERM, turn readiness off first, then let uvicorn's graceful shutdown begin."""

import asyncio
import signal
from collections.abc import Callable
from types import FrameType


def drain_before_stopping(
    turn_unready: Callable[[], None],
    drain_seconds: float,
    end_waits: Callable[[], None] = lambda: None,
) -> None:
    """Wrap uvicorn's SIGTERM handler so readiness is 503 for drain_seconds before it runs.

    Load balancers then stop sending new requests while in-flight ones still complete;
    uvicorn restores its own handlers when it exits, so nothing needs undoing. When the stop
    begins, end_waits() ends the change feed's long polls: uvicorn waits for every running
    request before it stops, and a feed request may be waiting up to 30 s for nothing.
    """
    stop_serving = signal.getsignal(signal.SIGTERM)
    if not callable(stop_serving):
        return  # not running under uvicorn's signal capture (e.g. in tests)
    loop = asyncio.get_running_loop()

    def stop(signum: int, frame: FrameType | None) -> None:
        end_waits()
        stop_serving(signum, frame)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        turn_unready()
        # call_soon_threadsafe is the loop's one entry point that is safe from a signal handler.
        loop.call_soon_threadsafe(loop.call_later, drain_seconds, stop, signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
