"""JWT settings read from the JWT_* environment variables; every error names its variable."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

VARIABLES: Final = (
    "JWT_SECRET",
    "JWT_PUBLIC_KEY_FILE",
    "JWT_JWKS_FILE",
    "JWT_JWKS_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_ALGORITHMS",
    "JWT_LEEWAY_SECONDS",
)
KEY_SOURCES: Final = VARIABLES[:4]
SYMMETRIC: Final = ("HS256",)
ASYMMETRIC: Final = ("RS256", "ES256")
MIN_SECRET_BYTES: Final = 32
MAX_LEEWAY_SECONDS: Final = 300
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


@attrs.frozen
class JwtSettings:
    """What verifies tokens: exactly one key source, and the claims every token must carry."""

    algorithms: tuple[str, ...]
    secret: bytes = attrs.field(default=b"", repr=False)
    public_key_pem: bytes = b""
    jwks_document: dict[str, Any] | None = None
    jwks_url: str = ""
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    leeway_seconds: int = 30


def from_env(env: Mapping[str, str]) -> JwtSettings | None:
    """None when no JWT_* variable is set (JWT off); ValueError naming the variable when wrong."""
    env = {k: v.strip() for k, v in env.items() if k in VARIABLES and v.strip()}
    if not env:
        return None
    sources = [name for name in KEY_SOURCES if name in env]
    if len(sources) != 1:
        raise ValueError(f"JWT: set exactly one of {', '.join(KEY_SOURCES)}")
    source = sources[0]
    settings = JwtSettings(
        algorithms=_algorithms(env, source),
        issuer=env.get("JWT_ISSUER"),
        audience=tuple(a.strip() for a in env.get("JWT_AUDIENCE", "").split(",") if a.strip()),
        leeway_seconds=_leeway(env),
        **_key_material(env, source),
    )
    if source in ("JWT_JWKS_FILE", "JWT_JWKS_URL") and not (settings.issuer and settings.audience):
        # A provider's JWK set signs tokens for every client it serves, not only for us.
        raise ValueError(f"{source} needs JWT_ISSUER and JWT_AUDIENCE as well")
    # Imported here: PyJWT and cryptography cost a worker 9 MiB, needed only with JWT on.
    from cme_adapters.auth import keys

    try:
        if settings.public_key_pem:
            keys.pem_key(settings.public_key_pem, settings.algorithms)
        if settings.jwks_document is not None:
            keys.jwk_set(settings.jwks_document, settings.algorithms)
    except ValueError as error:
        raise ValueError(f"{source} {error}") from None
    return settings


def _algorithms(env: Mapping[str, str], source: str) -> tuple[str, ...]:
    allowed = SYMMETRIC if source == "JWT_SECRET" else ASYMMETRIC
    if "JWT_ALGORITHMS" not in env:
        return allowed
    names = tuple(dict.fromkeys(a.strip() for a in env["JWT_ALGORITHMS"].split(",") if a.strip()))
    if not names or not set(names) <= set(allowed):
        # Never "none", and never HS256 beside a public key: that is the HS/RS confusion attack.
        raise ValueError(f"JWT_ALGORITHMS may only list {', '.join(allowed)} with {source}")
    return names


def _leeway(env: Mapping[str, str]) -> int:
    raw = env.get("JWT_LEEWAY_SECONDS", "30")
    if not raw.isdigit() or int(raw) > MAX_LEEWAY_SECONDS:
        raise ValueError(
            f"JWT_LEEWAY_SECONDS must be an integer between 0 and {MAX_LEEWAY_SECONDS}"
        )
    return int(raw)


def _key_material(env: Mapping[str, str], source: str) -> dict[str, Any]:
    value = env[source]
    if source == "JWT_SECRET":
        if len(value.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        return {"secret": value.encode()}
    if source == "JWT_JWKS_URL":
        url = urlsplit(value)
        if not (url.scheme == "https" or (url.scheme == "http" and url.hostname in _LOOPBACK)):
            raise ValueError("JWT_JWKS_URL must be an https:// URL (http:// only on loopback)")
        return {"jwks_url": value}
    try:
        content = Path(value).read_bytes()
    except OSError:
        raise ValueError(f"{source} cannot be read") from None
    if source == "JWT_PUBLIC_KEY_FILE":
        return {"public_key_pem": content}
    try:
        document = json.loads(content)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ValueError("JWT_JWKS_FILE is not a JSON JWK set")
    return {"jwks_document": document}
