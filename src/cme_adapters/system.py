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

    def new_id(self) -> UUID:
        millis = time.time_ns() // 1_000_000
        value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10)) & (2**80 - 1)
        value = value & ~(0xF << 76) | 0x7 << 76  # version 7
        value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
        return UUID(int=value)
