"""Configuration from environment variables, validated once at start-up."""

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import attrs

from cme_adapters.auth.jwt_config import JwtSettings
from cme_adapters.rate_limit import RateLimits
from cme_adapters.sql.config import async_url
from cme_entrypoints import settings_parsing as parse

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("json", "console")
TRACES_EXPORTERS: Final = ("none", "otlp")
WORKERS_MAX: Final = 64
DEFAULT_LIMITS: Final = RateLimits()


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
        get = parse.EnvReader({k: v for k, v in env.items() if v.strip() != ""})
        # Waits stay below the connection cap: every other request keeps a place.
        max_connections = get.integer("MAX_CONNECTIONS", 1000, 1, 100_000)
        return cls(
            database_url=parse.database_url(get),
            api_keys=parse.api_keys(get),
            jwt=parse.jwt(get),
            require_read_scope=get.boolean("REQUIRE_READ_SCOPE"),
            cors_allow_origins=parse.origins(get),
            metrics_token=parse.metrics_token(get),
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
            redis_url=parse.redis_url(get),
            docs_url=parse.docs_url(get),
            rate_limit_prefix=get.text("RATE_LIMIT_PREFIX", "cme:rate:"),
            google_cloud_project=get.text("GOOGLE_CLOUD_PROJECT", ""),
            traces=get.choice("OTEL_TRACES_EXPORTER", "none", TRACES_EXPORTERS) == "otlp",
            traces_endpoint=get.text(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", get.text("OTEL_EXPORTER_OTLP_ENDPOINT", "")
            ),
        )
