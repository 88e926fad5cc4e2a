"""Signing keys for JWT verification: one static key, or a JWK set kept fresh off the event loop."""

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK, PyJWKSet
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import PyJWTError

log = logging.getLogger("cme.auth")

Fetch = Callable[[], Mapping[str, Any]]
REFRESH_COOLDOWN_SECONDS: Final = 30.0
MAX_AGE_SECONDS: Final = 600.0
MIN_RSA_BITS: Final = 2048


def secret_key(secret: bytes) -> PyJWK:
    encoded = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    return PyJWK({"kty": "oct", "k": encoded}, "HS256")


def pem_key(pem: bytes, algorithms: tuple[str, ...]) -> PyJWK:
    """The PEM public key, bound to the one pinned algorithm its type can verify."""
    try:
        public = load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("does not hold a PEM public key") from None
    if _weak(public):
        raise ValueError(f"holds an RSA key shorter than {MIN_RSA_BITS} bits")
    if isinstance(public, RSAPublicKey) and "RS256" in algorithms:
        return PyJWK(RSAAlgorithm.to_jwk(public, as_dict=True), "RS256")
    if (
        isinstance(public, EllipticCurvePublicKey)
        and isinstance(public.curve, SECP256R1)
        and "ES256" in algorithms
    ):
        return PyJWK(ECAlgorithm.to_jwk(public, as_dict=True), "ES256")
    raise ValueError(f"holds no key for {', '.join(algorithms)} (RSA for RS256, P-256 for ES256)")


def jwk_set(document: Mapping[str, Any], algorithms: tuple[str, ...]) -> dict[str | None, PyJWK]:
    """Signature keys by kid, only those for a pinned algorithm; ValueError when none is left."""
    try:
        keys = PyJWKSet.from_dict(dict(document)).keys
    except PyJWTError:
        raise ValueError("does not hold a JWK set with a usable key") from None
    usable = {
        key.key_id: key
        for key in keys
        if key.algorithm_name in algorithms
        and key.public_key_use in (None, "sig")
        and not _weak(key.key)
    }
    if not usable:
        raise ValueError(f"holds no signature key for {', '.join(algorithms)}")
    return usable


def _weak(key: object) -> bool:
    return isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS


class StaticKey:
    """One key for every token: a shared secret or a PEM public key."""

    def __init__(self, key: PyJWK) -> None:
        self.single: PyJWK | None = key

    async def start(self) -> None:
        return None

    async def key_for(self, kid: str | None) -> PyJWK | None:
        return self.single


class JwkSetKeys:
    """Keys from a JWK set file, looked up by kid."""

    def __init__(self, keys: dict[str | None, PyJWK]) -> None:
        self.single: PyJWK | None = None
        self._keys = keys

    async def start(self) -> None:
        return None

    async def key_for(self, kid: str | None) -> PyJWK | None:
        return self._keys.get(kid)


class FetchedJwkSet:
    """Keys from a JWKS URL, looked up by kid without I/O.

    The set is fetched at start-up, again when a token names an unknown kid (at most once per
    cooldown, however many such tokens arrive), and in the background once it is older than
    max_age. Every fetch runs in a thread: the fetcher blocks, and must never stall the event
    loop. A failed fetch keeps the keys already known.
    """

    def __init__(
        self,
        fetch: Fetch,
        algorithms: tuple[str, ...],
        cooldown: float = REFRESH_COOLDOWN_SECONDS,
        max_age: float = MAX_AGE_SECONDS,
    ) -> None:
        self.single: PyJWK | None = None
        self._keys: dict[str | None, PyJWK] = {}
        self._fetch = fetch
        self._algorithms = algorithms
        self._cooldown = cooldown
        self._max_age = max_age
        self._fetched_at = self._tried_at = -float("inf")
        self._refresh: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._refreshed()

    async def key_for(self, kid: str | None) -> PyJWK | None:
        key = self._keys.get(kid)
        now = time.monotonic()
        if now - self._tried_at < self._cooldown:
            return key
        if key is None:
            await self._refreshed()
            return self._keys.get(kid)
        if now - self._fetched_at >= self._max_age:
            self._start_refresh()
        return key

    async def _refreshed(self) -> None:
        # Shielded: a caller that disconnects must not cancel the fetch others are awaiting.
        await asyncio.shield(self._start_refresh())

    def _start_refresh(self) -> asyncio.Task[None]:
        if self._refresh is None or self._refresh.done():
            self._tried_at = time.monotonic()
            self._refresh = asyncio.get_running_loop().create_task(self._fetch_in_thread())
        return self._refresh

    async def _fetch_in_thread(self) -> None:
        try:
            document = await asyncio.to_thread(self._fetch)
            self._keys = jwk_set(document, self._algorithms)
        except Exception as error:  # any failure: keep serving with the keys we have
            # The class name only: a fetch error's text can carry the URL, which may be secret.
            log.warning("JWKS fetch failed: %s", type(error).__name__)
            return
        self._fetched_at = time.monotonic()
