"""The real clock and id generator."""

import os
import time
from datetime import UTC, datetime
from uuid import UUID


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Uuid7Generator:
    """Time-ordered UUIDs (RFC 9562 version 7): new rows land at the end of the id index."""

    # Random bytes are read 4 KiB at a time: a 1000-product batch needs 2000 ids, and one
    # os.urandom call per id was a fifth of its CPU time.
    _REFILL = 4096

    def __init__(self) -> None:
        self._random = b""
        self._at = 0
        self._pid = 0

    def new_id(self) -> UUID:
        millis = time.time_ns() // 1_000_000
        value = (millis & (2**48 - 1)) << 80 | int.from_bytes(self._random_bytes()) & (2**80 - 1)
        value = value & ~(0xF << 76) | 0x7 << 76  # version 7
        value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
        return UUID(int=value)

    def _random_bytes(self) -> bytes:
        # A forked worker must not hand out its parent's unread bytes: same bytes, same ids.
        if self._at + 10 > len(self._random) or self._pid != os.getpid():
            self._random, self._at, self._pid = os.urandom(self._REFILL), 0, os.getpid()
        self._at += 10
        return self._random[self._at - 10 : self._at]
