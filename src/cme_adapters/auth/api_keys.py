"""API-key authentication: several keys at once for rotation, compared in constant time."""

import hashlib
import hmac
from collections.abc import Iterable

from cme_domain.principal import READ_SCOPE, WRITE_SCOPE, Principal


class ApiKeyAuthenticator:
    def __init__(self, keys: Iterable[str]) -> None:
        # Keep digests, not keys: equal-length values make compare_digest's time independent
        # of where a guess first differs.
        self._digests = [(_digest(k), _subject(k)) for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def authenticate(self, api_key: str) -> Principal | None:
        offered = _digest(api_key)
        found = None
        for digest, subject in self._digests:  # no early exit: every key costs the same
            if hmac.compare_digest(offered, digest):
                found = subject
        if found is None:
            return None
        return Principal(found, frozenset({READ_SCOPE, WRITE_SCOPE}))


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _subject(key: str) -> str:
    # Stable across restarts and rotations, and reveals nothing usable about the key.
    return "api-key:" + hashlib.sha256(key.encode()).hexdigest()[:12]
