"""Configuration from environment variables, validated once at start-up."""

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import quote

import attrs

from cme_adapters.auth import jwt_config
from cme_adapters.auth.api_keys import ApiKey
from cme_adapters.auth.jwt_config import JwtSettings
from cme_adapters.rate_limit import Rate, RateLimits
from cme_adapters.sql.config import async_url

DEFAULT_SQLITE_PATH: Final = Path("var/cme.db")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("json", "console")
TRACES_EXPORTERS: Final = ("none", "otlp")
WORKERS_MAX: Final = 64
_ORIGIN: Final = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_ASCII_INT: Final = re.compile(r"[0-9]{1,7}")
_REDIS_URL: Final = re.compile(r"rediss?://[^\s]+")
_WEB_URL: Final = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s\"<>]*)?")


DEFAULT_LIMITS: Final = RateLimits()


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and never shows its value."""


@attrs.frozen
class Settings:
    # Secrets stay out of repr, so a settings object that ends up in a log line leaks nothing.
    database_url: str = attrs.field(repr=False)
    api_keys: tuple[str, ...] = attrs.field(default=(), repr=False)
    jwt: JwtSettings | None = None
    require_read_scope: bool = False
    cors_allow_origins: tuple[str, ...] = ()
    metrics_token: str = attrs.field(default="", repr=False)
    host: str = "0.0.0.0"  # noqa: S104  # nosec B104  # a container listens beyond loopback
    port: int = 5000
    workers: int = 1
    log_level: str = "INFO"
    log_format: str = "json"
    pool_size: int = 5
    shutdown_grace_seconds: int = 20
    shutdown_drain_seconds: int = 0
    keep_alive_seconds: int = 5
    docs_url: str = ""
    idempotency_ttl_hours: int = 24
    changes_retention_days: int = 7
    request_telemetry: bool = True
    cursor_secret: str = attrs.field(default="", repr=False)
    header_timeout_seconds: int = 5
    body_timeout_seconds: int = 10
    max_connections: int = 1000
    feed_waits_per_worker: int = 100
    feed_waits_per_caller: int = 10
    rate_limits: RateLimits = attrs.field(factory=RateLimits)
    redis_url: str = attrs.field(default="", repr=False)
    rate_limit_prefix: str = "cme:rate:"
    google_cloud_project: str = ""
    traces: bool = False  # OTEL_TRACES_EXPORTER=otlp; the SDK reads the other OTEL_* itself
    traces_endpoint: str = ""  # to tell Google's OTLP endpoint, which needs credentials
    webhook_allow_private_addresses: bool = False  # development and tests only

    @property
    def cursor_key(self) -> bytes | None:
        """The key from CURSOR_SECRET; None leaves it to the database (one random key each)."""
        if not self.cursor_secret:
            return None
        return hashlib.sha256(self.cursor_secret.encode()).digest()

    @property
    def database_kind(self) -> str:
        return async_url(self.database_url).get_backend_name()

    @property
    def database_location(self) -> str:
        """Where the data lives, as a person checks it: the file, or host/database (no secret)."""
        url = async_url(self.database_url)
        if url.get_backend_name() == "sqlite":
            path = self.sqlite_path
            return f"the SQLite file {path}" if path else "an in-memory SQLite database"
        host = url.host or url.query.get("host") or "localhost"
        return f"PostgreSQL at {host}:{url.port or 5432}/{url.database}"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, made absolute; None on PostgreSQL."""
        url = async_url(self.database_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database).resolve()

    @property
    def missing_sqlite_folder(self) -> Path | None:
        """The folder the SQLite file should be in, when it does not exist."""
        path = self.sqlite_path
        return path.parent if path is not None and not path.parent.is_dir() else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        get = _Reader({k: v for k, v in env.items() if v.strip() != ""})
        # Waits stay below the connection cap: every other request keeps a place.
        max_connections = get.integer("MAX_CONNECTIONS", 1000, 1, 100_000)
        return cls(
            database_url=_database_url(get),
            api_keys=_api_keys(get),
            jwt=_jwt(get),
            require_read_scope=get.boolean("REQUIRE_READ_SCOPE"),
            cors_allow_origins=_origins(get),
            metrics_token=_metrics_token(get),
            host=get.text("HOST", "0.0.0.0"),  # noqa: S104  # nosec B104  # as above
            port=get.integer("PORT", 5000, 1, 65535),
            workers=get.integer("WEB_CONCURRENCY", 1, 1, WORKERS_MAX),
            log_level=get.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
            log_format=get.choice("LOG_FORMAT", "json", LOG_FORMATS),
            pool_size=get.integer("DB_POOL_SIZE", 5, 1, 100),
            shutdown_grace_seconds=get.integer("SHUTDOWN_GRACE_SECONDS", 20, 0, 3600),
            shutdown_drain_seconds=get.integer("SHUTDOWN_DRAIN_SECONDS", 0, 0, 60),
            keep_alive_seconds=get.integer("KEEP_ALIVE_SECONDS", 5, 1, 3600),
            idempotency_ttl_hours=get.integer("IDEMPOTENCY_TTL_HOURS", 24, 1, 720),
            changes_retention_days=get.integer("CHANGES_RETENTION_DAYS", 7, 1, 3650),
            request_telemetry=get.boolean("REQUEST_TELEMETRY", default=True),
            webhook_allow_private_addresses=get.boolean("WEBHOOK_ALLOW_PRIVATE_ADDRESSES"),
            cursor_secret=get.text("CURSOR_SECRET", ""),
            header_timeout_seconds=get.integer("HEADER_TIMEOUT_SECONDS", 5, 1, 300),
            body_timeout_seconds=get.integer("BODY_TIMEOUT_SECONDS", 10, 1, 300),
            max_connections=max_connections,
            feed_waits_per_worker=get.integer(
                "FEED_WAITS_PER_WORKER", min(100, max_connections - 1), 0, max_connections - 1
            ),
            feed_waits_per_caller=get.integer("FEED_WAITS_PER_CALLER", 10, 1, 10_000),
            rate_limits=RateLimits(
                reads=get.rate("RATE_LIMIT_READS", DEFAULT_LIMITS.reads),
                writes=get.rate("RATE_LIMIT_WRITES", DEFAULT_LIMITS.writes),
                batch=get.rate("RATE_LIMIT_BATCH", DEFAULT_LIMITS.batch),
            ),
            redis_url=_redis_url(get),
            docs_url=_docs_url(get),
            rate_limit_prefix=get.text("RATE_LIMIT_PREFIX", "cme:rate:"),
            google_cloud_project=get.text("GOOGLE_CLOUD_PROJECT", ""),
            traces=get.choice("OTEL_TRACES_EXPORTER", "none", TRACES_EXPORTERS) == "otlp",
            traces_endpoint=get.text(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", get.text("OTEL_EXPORTER_OTLP_ENDPOINT", "")
            ),
        )


@attrs.frozen
class _Reader:
    env: Mapping[str, str]

    def text(self, name: str, default: str) -> str:
        return self.env.get(name, default).strip()

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.env.get(name)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(f"{name} must be an integer between {low} and {high}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be an integer between {low} and {high}")
        return value

    def rate(self, name: str, default: Rate | None) -> Rate | None:
        """`N/SECONDS` (N requests per SECONDS, in bursts of up to N), or 0 for no limit."""
        raw = self.env.get(name)
        if raw is None:
            return default
        if raw.strip() == "0":
            return None
        count, _, seconds = raw.strip().partition("/")
        if not (_ASCII_INT.fullmatch(count) and _ASCII_INT.fullmatch(seconds)):
            raise SettingsError(f"{name} must be N/SECONDS, like 600/60, or 0 for no limit")
        rate = Rate(int(count), int(seconds))
        if not (1 <= rate.quota <= 1_000_000 and 1 <= rate.window <= 86_400):
            raise SettingsError(f"{name} must be 1-1000000 requests per 1-86400 seconds")
        return rate

    def items(self, name: str) -> list[str]:
        return [item.strip() for item in self.env.get(name, "").split(",") if item.strip()]

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.text(name, str(default)).lower()
        if value not in ("true", "false", "1", "0", "yes", "no"):
            raise SettingsError(f"{name} must be true or false")
        return value in ("true", "1", "yes")

    def choice(self, name: str, default: str, allowed: tuple[str, ...], upper: bool = False) -> str:
        value = self.text(name, default)
        value = value.upper() if upper else value.lower()
        if value not in allowed:
            raise SettingsError(f"{name} must be one of {', '.join(allowed)}")
        return value


def _database_url(get: _Reader) -> str:
    if "DATABASE_URL" in get.env:
        url = get.text("DATABASE_URL", "")
        try:
            parsed = async_url(url)
        except Exception:  # any parse failure: the message must not echo a password
            raise SettingsError(
                "DATABASE_URL must look like postgresql://user:pass@host:5432/db "
                "or sqlite:///path/to/file.db"
            ) from None
        if parsed.get_backend_name() == "sqlite" and parsed.host:
            # sqlite://name.db reads name.db as a host, and SQLAlchemy refuses it much later.
            raise SettingsError(
                "DATABASE_URL names a SQLite file after three slashes: "
                "sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        return url
    if "DB_HOST" in get.env:
        missing = [n for n in ("DB_USER", "DB_NAME") if n not in get.env]
        if missing:
            raise SettingsError(f"{missing[0]} is required when DB_HOST is set")
        port = get.integer("DB_PORT", 5432, 1, 65535)
        user = quote(get.env["DB_USER"], safe="")
        password = quote(get.env.get("DB_PASS", ""), safe="")
        credentials = f"{user}:{password}" if password else user
        url = f"postgresql://{credentials}@{get.env['DB_HOST']}:{port}/{get.env['DB_NAME']}"
        if "DB_SSLMODE" in get.env:
            url += f"?sslmode={quote(get.env['DB_SSLMODE'], safe='')}"
        return url
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def _redis_url(get: _Reader) -> str:
    url = get.text("REDIS_URL", "")
    if url and not _REDIS_URL.match(url):
        raise SettingsError("REDIS_URL must look like redis://host:6379/0 or rediss://...")
    return url


def _docs_url(get: _Reader) -> str:
    url = get.text("DOCS_URL", "")
    if url and not _WEB_URL.fullmatch(url):
        raise SettingsError("DOCS_URL must be an http:// or https:// URL, like https://docs.test/")
    return url


def _api_keys(get: _Reader) -> tuple[str, ...]:
    """`name:key` entries: API_KEY is the key named "default"; API_KEYS a comma list."""
    entries = [f"default:{get.text('API_KEY', '')}"] if "API_KEY" in get.env else []
    entries += get.items("API_KEYS")
    for entry in entries:
        try:
            ApiKey.parse(entry)
        except ValueError as error:
            raise SettingsError(f"API_KEY/API_KEYS: {error}") from None
    return tuple(dict.fromkeys(entries))


def _jwt(get: _Reader) -> JwtSettings | None:
    try:
        return jwt_config.from_env(get.env)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def _origins(get: _Reader) -> tuple[str, ...]:
    origins = tuple(
        o.strip() for o in get.env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()
    )
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise SettingsError("CORS_ALLOW_ORIGINS must list origins like https://app.example.com")
    return origins


def _metrics_token(get: _Reader) -> str:
    token = get.text("METRICS_TOKEN", "")
    if token and len(token) < 16:
        raise SettingsError("METRICS_TOKEN must be at least 16 characters")
    return token
