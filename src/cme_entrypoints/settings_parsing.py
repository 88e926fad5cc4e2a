"""Environment variables read one by one, each checked, and the settings made of several."""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import quote

import attrs

from cme_adapters.auth import jwt_config
from cme_adapters.auth.api_keys import ApiKey
from cme_adapters.auth.jwt_config import JwtSettings
from cme_adapters.rate_limit import Rate
from cme_adapters.sql.config import async_url

DEFAULT_SQLITE_PATH: Final = Path("var/cme.db")
_ORIGIN: Final = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_ASCII_INT: Final = re.compile(r"[0-9]{1,7}")
_REDIS_URL: Final = re.compile(r"rediss?://[^\s]+")
_WEB_URL: Final = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s\"<>]*)?")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and never shows its value."""


@attrs.frozen
class EnvReader:
    """Typed reads of the variables that are set and not blank; a bad one is a SettingsError."""

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


def database_url(get: EnvReader) -> str:
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


def redis_url(get: EnvReader) -> str:
    url = get.text("REDIS_URL", "")
    if url and not _REDIS_URL.match(url):
        raise SettingsError("REDIS_URL must look like redis://host:6379/0 or rediss://...")
    return url


def docs_url(get: EnvReader) -> str:
    url = get.text("DOCS_URL", "")
    if url and not _WEB_URL.fullmatch(url):
        raise SettingsError("DOCS_URL must be an http:// or https:// URL, like https://docs.test/")
    return url


def api_keys(get: EnvReader) -> tuple[str, ...]:
    """`name:key` entries: API_KEY is the key named "default"; API_KEYS a comma list."""
    entries = [f"default:{get.text('API_KEY', '')}"] if "API_KEY" in get.env else []
    entries += get.items("API_KEYS")
    for entry in entries:
        try:
            ApiKey.parse(entry)
        except ValueError as error:
            raise SettingsError(f"API_KEY/API_KEYS: {error}") from None
    return tuple(dict.fromkeys(entries))


def jwt(get: EnvReader) -> JwtSettings | None:
    try:
        return jwt_config.from_env(get.env)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def origins(get: EnvReader) -> tuple[str, ...]:
    origins = tuple(
        o.strip() for o in get.env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()
    )
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise SettingsError("CORS_ALLOW_ORIGINS must list origins like https://app.example.com")
    return origins


def metrics_token(get: EnvReader) -> str:
    token = get.text("METRICS_TOKEN", "")
    if token and len(token) < 16:
        raise SettingsError("METRICS_TOKEN must be at least 16 characters")
    return token
