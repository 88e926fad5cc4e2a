"""API-key authentication: named keys, several at once for rotation, plain or sha256-hashed."""

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Final

import attrs

from cme_domain.principal import READ_SCOPE, WRITE_SCOPE, Principal

HASHED_PREFIX: Final = "sha256:"
MIN_KEY_LENGTH: Final = 16
_NAME: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX_DIGEST: Final = re.compile(r"[0-9a-fA-F]{64}")
_KEY_CHARS: Final = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: fits a header
_SCOPES: Final = frozenset({READ_SCOPE, WRITE_SCOPE})


@attrs.frozen
class ApiKey:
    name: str
    digest: bytes = attrs.field(repr=False)

    @classmethod
    def parse(cls, entry: str) -> "ApiKey":
        """`name:key`, `name:sha256:<hex>`, or a bare key or hash, named by its digest.

        A bare key and its hashed form get the same name, so hashing a key keeps its subject.
        Errors never quote the entry: it may be a live key.
        """
        name, _, secret = entry.partition(":")
        if not secret or not _NAME.fullmatch(name) or _is_hash(entry):
            name, secret = "", entry
        digest = _digest_of(secret)
        return cls(name or digest.hex()[:12], digest)


def _is_hash(text: str) -> bool:
    return text.startswith(HASHED_PREFIX) and bool(_HEX_DIGEST.fullmatch(text[7:]))


def _digest_of(secret: str) -> bytes:
    if _is_hash(secret):
        return bytes.fromhex(secret[7:])
    if len(secret) < MIN_KEY_LENGTH:
        raise ValueError(f"every key must be at least {MIN_KEY_LENGTH} characters")
    if not _KEY_CHARS.fullmatch(secret):
        raise ValueError("every key must be printable ASCII without spaces")
    return hashlib.sha256(secret.encode()).digest()


def hashed(key: str) -> str:
    """The form to configure instead of the plain key: `sha256:<hex>`."""
    return HASHED_PREFIX + hashlib.sha256(key.encode()).hexdigest()


class ApiKeyAuthenticator:
    def __init__(self, entries: Iterable[str]) -> None:
        # Keep digests, not keys: equal-length values make compare_digest's time independent
        # of where a guess first differs. Principals are built once, not per request.
        keys = [ApiKey.parse(entry) for entry in entries]
        self._keys = [(k.digest, Principal(f"api-key:{k.name}", _SCOPES)) for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, api_key: str) -> Principal | None:
        offered = hashlib.sha256(api_key.encode()).digest()
        found = None
        for digest, principal in self._keys:  # no early exit: every key costs the same
            if hmac.compare_digest(offered, digest):
                found = principal
        return found
