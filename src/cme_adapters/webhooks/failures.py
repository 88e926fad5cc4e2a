"""Why a delivery attempt got no answer, in one short line for the deliveries log."""

import os
import ssl
from collections.abc import Iterator
from typing import Final

import httpcore

_ERROR_MAX: Final = 200


def describe(error: BaseException, timeout: float) -> str:
    """The most telling reason in error's chain: httpcore wraps what really happened."""
    for cause in _causes(error):
        if isinstance(cause, TimeoutError | httpcore.TimeoutException):
            return f"no answer within {timeout:g} s"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return one_line(f"TLS: certificate verify failed: {cause.verify_message}")
        if isinstance(cause, ssl.SSLError):
            return one_line(f"TLS: {(cause.reason or str(cause)).replace('_', ' ').lower()}")
        if isinstance(cause, OSError) and cause.errno and cause.errno > 0:
            # Not str(): asyncio's reads "Connect call failed ('10.0.0.1', 443)".
            return os.strerror(cause.errno).lower()
    if isinstance(error, httpcore.ProtocolError):
        return one_line(f"protocol error: {error}")
    return one_line(f"{type(error).__name__}: {error}")


def one_line(text: str) -> str:
    """text on one line of at most 200 characters: the log is for reading at a glance."""
    line = " ".join(text.split())
    return line if len(line) <= _ERROR_MAX else line[: _ERROR_MAX - 1] + "…"


def _causes(error: BaseException) -> Iterator[BaseException]:
    """error and what it came from, outermost first, into exception groups too."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
