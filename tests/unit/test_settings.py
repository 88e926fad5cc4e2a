"""Authentication and hardening settings: what starts, and the one line that stops a bad start."""

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cme_adapters.auth.api_keys import ApiKeyAuthenticator, hashed
from cme_adapters.rate_limit import Rate, RateLimits
from cme_entrypoints.settings import Settings
from cme_entrypoints.settings_parsing import SettingsError
from tests.unit.test_jwt import jwk, public_pem, rsa_key

SECRET = "s" * 32
DB = {"DATABASE_URL": "postgresql://cme:db-password-123@db:5432/cme"}


def settings(**env: str) -> Settings:
    return Settings.from_env({**DB, **env})


def error(**env: str) -> str:
    with pytest.raises(SettingsError) as raised:
        settings(**env)
    message = str(raised.value)
    assert "\n" not in message
    for value in env.values():  # never the value: it may be a secret
        assert len(value) < 8 or value not in message
    return message


def test_no_jwt_variable_leaves_jwt_off_and_any_one_turns_it_on() -> None:
    assert settings().jwt is None
    jwt = settings(JWT_SECRET=SECRET, JWT_LEEWAY_SECONDS="0").jwt
    assert jwt is not None
    assert (jwt.algorithms, jwt.secret, jwt.leeway_seconds) == (("HS256",), SECRET.encode(), 0)
    assert "JWT_SECRET" in error(JWT_ISSUER="https://issuer.test")


def test_a_jwt_secret_shorter_than_32_bytes_stops_start_up_naming_it() -> None:
    assert error(JWT_SECRET="s" * 31) == "JWT_SECRET must be at least 32 bytes"


def test_two_key_sources_at_once_are_refused() -> None:
    assert "exactly one" in error(JWT_SECRET=SECRET, JWT_JWKS_URL="https://idp.test/jwks")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"JWT_SECRET": SECRET, "JWT_ALGORITHMS": "none"}, "JWT_ALGORITHMS"),
        ({"JWT_SECRET": SECRET, "JWT_ALGORITHMS": "HS256,RS256"}, "JWT_ALGORITHMS"),
        ({"JWT_SECRET": SECRET, "JWT_LEEWAY_SECONDS": "301"}, "JWT_LEEWAY_SECONDS"),
        ({"JWT_SECRET": SECRET, "JWT_LEEWAY_SECONDS": "-1"}, "JWT_LEEWAY_SECONDS"),
        ({"JWT_JWKS_URL": "http://idp.test/jwks", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"}, "URL"),
        ({"JWT_JWKS_URL": "https://idp.test/jwks"}, "JWT_ISSUER and JWT_AUDIENCE"),
        ({"JWT_PUBLIC_KEY_FILE": "/nonexistent/key.pem"}, "JWT_PUBLIC_KEY_FILE cannot be read"),
        ({"REQUIRE_READ_SCOPE": "maybe"}, "REQUIRE_READ_SCOPE"),
        ({"CORS_ALLOW_ORIGINS": "https://ok.test,javascript:alert(1)"}, "CORS_ALLOW_ORIGINS"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
        ({"API_KEYS": "ci:too-short"}, "API_KEY/API_KEYS"),
        ({"API_KEY": "spaces are not ok in a key"}, "API_KEY/API_KEYS"),
        ({"RATE_LIMIT_READS": "600"}, "RATE_LIMIT_READS"),
        ({"RATE_LIMIT_WRITES": "10/0"}, "RATE_LIMIT_WRITES"),
        ({"RATE_LIMIT_BATCH": "-1/60"}, "RATE_LIMIT_BATCH"),
        ({"RATE_LIMIT_READS": "\u0661/60"}, "RATE_LIMIT_READS"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"HEADER_TIMEOUT_SECONDS": "0"}, "HEADER_TIMEOUT_SECONDS"),
        ({"BODY_TIMEOUT_SECONDS": "forever"}, "BODY_TIMEOUT_SECONDS"),
        ({"MAX_CONNECTIONS": "0"}, "MAX_CONNECTIONS"),
        ({"KEEP_ALIVE_SECONDS": "0"}, "KEEP_ALIVE_SECONDS"),
        ({"DOCS_URL": "javascript:alert(1)"}, "DOCS_URL"),
        ({"DOCS_URL": "https://docs.test/<script>"}, "DOCS_URL"),
        ({"KEEP_ALIVE_SECONDS": "3601"}, "KEEP_ALIVE_SECONDS"),
    ],
)
def test_each_bad_setting_stops_start_up_with_a_line_naming_it(
    env: dict[str, str], named: str
) -> None:
    assert named in error(**env)


def test_hs256_beside_a_public_key_is_refused_as_an_algorithm_confusion(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(public_pem(rsa_key()))
    assert settings(JWT_PUBLIC_KEY_FILE=str(pem)).jwt is not None
    assert "JWT_ALGORITHMS" in error(JWT_PUBLIC_KEY_FILE=str(pem), JWT_ALGORITHMS="RS256,HS256")
    assert "JWT_PUBLIC_KEY_FILE" in error(JWT_PUBLIC_KEY_FILE=str(pem), JWT_ALGORITHMS="ES256")


def test_a_jwks_file_needs_a_usable_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    claims = {"JWT_JWKS_FILE": str(path), "JWT_ISSUER": "i", "JWT_AUDIENCE": "a,b"}
    path.write_text(json.dumps({"keys": [jwk(rsa_key(), "k1")]}))
    jwt = settings(**claims).jwt
    assert jwt is not None
    assert jwt.audience == ("a", "b")
    path.write_text(json.dumps({"keys": [{**jwk(rsa_key(), "k1"), "use": "enc"}]}))
    assert "JWT_JWKS_FILE holds no signature key" in error(**claims)
    path.write_text("[]")
    assert error(**claims) == "JWT_JWKS_FILE is not a JSON JWK set"


def test_api_key_is_named_default_and_api_keys_take_names_and_hashes() -> None:
    plain, other = "plain-key-0123456789", "other-key-0123456789"
    keys = settings(API_KEY=plain, API_KEYS=f"ci:{other}, {hashed('bare-key-0123456789')}")
    authenticate = ApiKeyAuthenticator(keys.api_keys).authenticate

    def subject(key: str) -> Any:
        principal = authenticate(key)
        return principal and principal.subject

    assert subject(plain) == "api-key:default"
    assert subject(other) == "api-key:ci"
    assert subject("bare-key-0123456789") == "api-key:" + hashed("bare-key-0123456789")[7:19]
    assert subject("unknown-key-0123456789") is None


def test_a_hashed_key_and_its_plain_form_share_one_subject() -> None:
    key = "rotate-me-0123456789"
    by_plain = ApiKeyAuthenticator([f"ci:{key}"]).authenticate(key)
    by_hash = ApiKeyAuthenticator([f"ci:{hashed(key)}"]).authenticate(key)
    assert by_plain == by_hash
    assert by_hash is not None
    assert ApiKeyAuthenticator([hashed(key)]).authenticate(hashed(key)) is None


def test_secrets_never_appear_in_the_settings_repr(tmp_path: Path) -> None:
    loaded = settings(
        API_KEY="api-key-value-0123456789",
        JWT_SECRET=SECRET,
        METRICS_TOKEN="metrics-token-0123456789",
        CURSOR_SECRET="cursor-secret-0123456789",
    )
    text = repr(loaded)
    for secret in ("api-key-value", SECRET, "metrics-token", "cursor-secret", "db-password"):
        assert secret not in text


def test_hardening_switches_are_read_from_the_environment() -> None:
    loaded = settings(
        REQUIRE_READ_SCOPE="true",
        CORS_ALLOW_ORIGINS="https://app.test, http://localhost:3000",
        METRICS_TOKEN="metrics-token-0123456789",
    )
    assert loaded.require_read_scope is True
    assert loaded.cors_allow_origins == ("https://app.test", "http://localhost:3000")
    assert loaded.metrics_token == "metrics-token-0123456789"
    assert settings().require_read_scope is False
    assert settings().cors_allow_origins == ()


def test_idle_keep_alive_connections_close_after_5_s_unless_configured() -> None:
    assert settings().keep_alive_seconds == 5
    assert settings(KEEP_ALIVE_SECONDS="620").keep_alive_seconds == 620


def test_an_rsa_public_key_under_2048_bits_stops_start_up(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = tmp_path / "weak.pem"
    pem.write_bytes(public_pem(weak))
    assert error(JWT_PUBLIC_KEY_FILE=str(pem)) == (
        "JWT_PUBLIC_KEY_FILE holds an RSA key shorter than 2048 bits"
    )
    jwks = tmp_path / "weak.json"
    jwks.write_text(json.dumps({"keys": [jwk(weak, "w")]}))
    claims = {"JWT_ISSUER": "i", "JWT_AUDIENCE": "a"}
    assert "holds no signature key" in error(JWT_JWKS_FILE=str(jwks), **claims)


def test_the_idempotency_window_comes_from_the_environment() -> None:
    from datetime import timedelta

    from cme_entrypoints.container import Container

    settings = Settings.from_env({"IDEMPOTENCY_TTL_HOURS": "2", "DATABASE_URL": "sqlite://"})
    routes = Container(settings=settings).product_routes()
    assert routes.create_product.idempotency_ttl == timedelta(hours=2)
    with pytest.raises(SettingsError, match="IDEMPOTENCY_TTL_HOURS"):
        Settings.from_env({"IDEMPOTENCY_TTL_HOURS": "0", "DATABASE_URL": "sqlite://"})


def test_rate_limits_timeouts_and_the_connection_cap_come_from_the_environment() -> None:
    defaults = settings()
    assert defaults.rate_limits == RateLimits(Rate(6000, 60), Rate(600, 60), Rate(60, 60))
    assert (defaults.header_timeout_seconds, defaults.body_timeout_seconds) == (5, 10)
    assert (defaults.max_connections, defaults.redis_url) == (1000, "")
    tuned = settings(
        RATE_LIMIT_READS="600/1",
        RATE_LIMIT_WRITES="0",
        RATE_LIMIT_BATCH="5/3600",
        REDIS_URL="rediss://:secret-password@10.0.0.3:6378/0",
        HEADER_TIMEOUT_SECONDS="2",
        BODY_TIMEOUT_SECONDS="30",
        MAX_CONNECTIONS="250",
    )
    assert tuned.rate_limits == RateLimits(Rate(600, 1), None, Rate(5, 3600))
    assert tuned.redis_url.startswith("rediss://")
    assert "secret-password" not in repr(tuned)
    assert (tuned.header_timeout_seconds, tuned.body_timeout_seconds) == (2, 30)
    assert tuned.max_connections == 250


def test_traces_are_off_unless_the_otlp_exporter_is_asked_for() -> None:
    assert settings().traces is False
    assert settings(OTEL_TRACES_EXPORTER="none").traces is False
    assert settings(OTEL_TRACES_EXPORTER="otlp").traces is True
    assert "OTEL_TRACES_EXPORTER" in error(OTEL_TRACES_EXPORTER="jaeger")
