"""JWT verification: every claim check, pinned algorithms, and JWK sets from a file or a URL."""

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cme_adapters.auth import CredentialsRejected
from cme_adapters.auth.api_keys import ApiKeyAuthenticator
from cme_adapters.auth.jwt import JwtAuthenticator
from cme_adapters.auth.jwt_config import JwtSettings
from cme_adapters.auth.keys import FetchedJwkSet
from cme_domain.principal import Principal
from cme_entrypoints.token_command import mint

SECRET = b"unit-test-jwt-secret-0123456789abcdef"
ISSUER = "https://issuer.test"
AUDIENCE = "cme-api"


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        data = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**data, "kid": kid, "alg": "RS256", "use": "sig"}
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "alice", "scope": "products:write", "iat": now, "exp": now + 300}
    base.update({"iss": ISSUER, "aud": AUDIENCE})
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def hs256(secret: bytes = SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def signed(key: Any, alg: str = "RS256", kid: str | None = None, **overrides: Any) -> str:
    return jwt.encode(
        claims(**overrides), key, algorithm=alg, headers={"kid": kid} if kid else None
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_hs256(secret: bytes, **overrides: Any) -> str:
    """An HS256 token signed by hand: PyJWT itself refuses to use a PEM as an HMAC secret."""
    head = (
        _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(json.dumps(claims(**overrides)).encode())
    )
    signature = hmac.new(secret, head.encode(), hashlib.sha256).digest()
    return f"{head}.{_b64(signature)}"


def unsigned(**overrides: Any) -> str:
    return (
        _b64(b'{"alg":"none","typ":"JWT"}')
        + "."
        + _b64(json.dumps(claims(**overrides)).encode())
        + "."
    )


def hs_settings(**overrides: Any) -> JwtSettings:
    values = {"algorithms": ("HS256",), "secret": SECRET, "issuer": ISSUER, "audience": (AUDIENCE,)}
    return JwtSettings(**{**values, **overrides})


def rs_settings(**overrides: Any) -> JwtSettings:
    values = {"algorithms": ("RS256",), "public_key_pem": public_pem(rsa_key())}
    return JwtSettings(**{**values, "issuer": ISSUER, "audience": (AUDIENCE,), **overrides})


async def verify(settings: JwtSettings, token: str) -> Principal:
    authenticator = JwtAuthenticator(settings)
    await authenticator.start()
    return await authenticator.authenticate(token)


async def rejection(settings: JwtSettings, token: str) -> str:
    with pytest.raises(CredentialsRejected) as rejected:
        await verify(settings, token)
    return str(rejected.value)


@pytest.mark.anyio
async def test_a_valid_hs256_token_gives_its_subject_and_scopes() -> None:
    principal = await verify(hs_settings(), hs256(scope="products:read products:write"))
    assert principal == Principal("jwt:alice", frozenset({"products:read", "products:write"}))


@pytest.mark.anyio
async def test_scopes_are_also_read_from_an_scp_list() -> None:
    principal = await verify(hs_settings(), hs256(scope=None, scp=["products:write", 7]))
    assert principal.scopes == frozenset({"products:write"})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda: hs256(exp=int(time.time()) - 120), "the token has expired"),
        (lambda: hs256(nbf=int(time.time()) + 120), "the token is not valid yet"),
        (lambda: hs256(iss="https://evil.test"), "the token's issuer is not accepted"),
        (lambda: hs256(aud="another-api"), "the token's audience is not accepted"),
        (lambda: hs256(exp=None), "the token lacks a required claim"),
        (lambda: hs256(iss=None), "the token lacks a required claim"),
        (lambda: hs256(aud=None), "the token lacks a required claim"),
        (lambda: hs256(sub=None), "the token lacks a required claim"),
        (lambda: hs256(secret=b"another-secret-of-at-least-32-bytes!"), "the token is not valid"),
        (lambda: unsigned(), "the token's algorithm is not accepted"),
        (lambda: "not.a.jwt", "the token is not valid"),
        (lambda: hs256(sub="x" * 197), "the token's sub must be 1-196 characters"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "no-exp",
        "no-iss",
        "no-aud",
        "no-sub",
        "forged-signature",
        "alg-none",
        "garbage",
        "long-subject",
    ],
)
async def test_each_bad_token_is_rejected_with_its_reason(
    make_token: Callable[[], str], reason: str
) -> None:
    # Minted when the test runs, not at collection: a suite that takes longer than the
    # clock margins must not turn an expired or future token valid.
    assert await rejection(hs_settings(), make_token()) == reason


@pytest.mark.anyio
async def test_clock_skew_within_the_leeway_is_tolerated_and_beyond_it_is_not() -> None:
    now = int(time.time())
    assert await verify(hs_settings(leeway_seconds=30), hs256(exp=now - 20))
    assert await verify(hs_settings(leeway_seconds=30), hs256(nbf=now + 20))
    assert await rejection(hs_settings(leeway_seconds=30), hs256(exp=now - 40))
    assert await rejection(hs_settings(leeway_seconds=0), hs256(nbf=now + 5))


@pytest.mark.anyio
async def test_without_configured_issuer_or_audience_a_token_with_an_aud_is_still_refused() -> None:
    settings = hs_settings(issuer=None, audience=())
    assert (await verify(settings, hs256(iss=None, aud=None))).subject == "jwt:alice"
    assert await rejection(settings, hs256(iss=None)) == "the token's audience is not accepted"


@pytest.mark.anyio
async def test_rs256_and_es256_tokens_verify_against_their_pem_public_keys() -> None:
    assert (await verify(rs_settings(), signed(rsa_key()))).subject == "jwt:alice"
    es = rs_settings(algorithms=("ES256",), public_key_pem=public_pem(ec_key()))
    assert (await verify(es, signed(ec_key(), alg="ES256"))).subject == "jwt:alice"


@pytest.mark.anyio
async def test_rs256_configured_refuses_an_hs256_token_signed_with_the_public_key_pem() -> None:
    token = forged_hs256(public_pem(rsa_key()))
    assert await rejection(rs_settings(), token) == "the token's algorithm is not accepted"


@pytest.mark.anyio
async def test_a_token_signed_by_another_rsa_key_is_refused() -> None:
    assert await rejection(rs_settings(), signed(other_rsa_key())) == "the token is not valid"


@pytest.mark.anyio
async def test_a_jwk_set_file_picks_the_key_by_kid() -> None:
    document = {"keys": [jwk(rsa_key(), "k1"), jwk(other_rsa_key(), "k2")]}
    settings = rs_settings(public_key_pem=b"", jwks_document=document)
    assert (await verify(settings, signed(other_rsa_key(), kid="k2"))).subject == "jwt:alice"
    assert await rejection(settings, signed(rsa_key(), kid="k2")) == "the token is not valid"
    assert await rejection(settings, signed(rsa_key(), kid="k9")) == (
        "the token's signing key is not known"
    )


@pytest.mark.anyio
async def test_a_dev_token_from_cme_token_verifies_with_the_same_settings() -> None:
    token = mint(hs_settings(), "bob", "products:read", 60, int(time.time()))
    principal = await verify(hs_settings(), token)
    assert principal == Principal("jwt:bob", frozenset({"products:read"}))


class JwksServer:
    """A JWK set served over HTTP on loopback; `document` may change between requests."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    served = JwksServer({"keys": [jwk(rsa_key(), "k1")]})
    thread = threading.Thread(target=served.server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


def url_authenticator(url: str, cooldown: float) -> JwtAuthenticator:
    settings = rs_settings(public_key_pem=b"", jwks_url=url)
    keys = FetchedJwkSet(jwt.PyJWKClient(url, cache_jwk_set=False).fetch_data, ("RS256",), cooldown)
    return JwtAuthenticator(settings, keys)


@pytest.mark.anyio
async def test_a_jwks_url_is_fetched_at_start_and_not_per_request(jwks_server: JwksServer) -> None:
    authenticator = url_authenticator(jwks_server.url, cooldown=60)
    await authenticator.start()
    for _ in range(3):
        assert (
            await authenticator.authenticate(signed(rsa_key(), kid="k1"))
        ).subject == "jwt:alice"
    assert jwks_server.hits == 1


@pytest.mark.anyio
async def test_an_unknown_kid_refreshes_the_jwks_once_per_cooldown(jwks_server: JwksServer) -> None:
    authenticator = url_authenticator(jwks_server.url, cooldown=0.1)
    await authenticator.start()
    jwks_server.document = {"keys": [jwk(rsa_key(), "k1"), jwk(other_rsa_key(), "k2")]}
    await asyncio.sleep(0.11)
    assert (await authenticator.authenticate(signed(other_rsa_key(), kid="k2"))).subject
    assert jwks_server.hits == 2
    unknown = signed(other_rsa_key(), kid="nope")
    for _ in range(5):  # a flood of unknown kids within the cooldown fetches nothing more
        with pytest.raises(CredentialsRejected, match="signing key is not known"):
            await authenticator.authenticate(unknown)
    assert jwks_server.hits == 2
    await asyncio.sleep(0.11)
    with pytest.raises(CredentialsRejected):
        await authenticator.authenticate(unknown)
    assert jwks_server.hits == 3


@pytest.mark.anyio
async def test_an_unreachable_jwks_url_keeps_the_known_keys(jwks_server: JwksServer) -> None:
    authenticator = url_authenticator(jwks_server.url, cooldown=0)
    await authenticator.start()
    jwks_server.server.shutdown()
    jwks_server.server.server_close()
    with pytest.raises(CredentialsRejected):
        await authenticator.authenticate(signed(rsa_key(), kid="k-new"))
    assert (await authenticator.authenticate(signed(rsa_key(), kid="k1"))).subject == "jwt:alice"


@pytest.mark.anyio
async def test_concurrent_unknown_kids_share_one_fetch_made_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    fetch_threads: list[int] = []

    def fetch() -> dict[str, Any]:
        fetch_threads.append(threading.get_ident())
        time.sleep(0.05)  # a slow provider: every waiting request must share this one fetch
        return {"keys": [jwk(rsa_key(), f"k{len(fetch_threads)}")]}

    keys = FetchedJwkSet(fetch, ("RS256",), cooldown=0)
    authenticator = JwtAuthenticator(rs_settings(public_key_pem=b"", jwks_url="https://x"), keys)
    await authenticator.start()
    tokens = [signed(rsa_key(), kid="k2") for _ in range(10)]
    principals = await asyncio.gather(*(authenticator.authenticate(t) for t in tokens))
    assert {p.subject for p in principals} == {"jwt:alice"}
    assert len(fetch_threads) == 2
    assert loop_thread not in fetch_threads


@pytest.mark.anyio
async def test_a_stale_jwks_is_refreshed_in_the_background_without_holding_requests() -> None:
    fetches: list[float] = []

    def fetch() -> dict[str, Any]:
        fetches.append(time.monotonic())
        return {"keys": [jwk(rsa_key(), "k1")]}

    keys = FetchedJwkSet(fetch, ("RS256",), cooldown=0, max_age=0)
    authenticator = JwtAuthenticator(rs_settings(public_key_pem=b"", jwks_url="https://x"), keys)
    await authenticator.start()
    assert (await authenticator.authenticate(signed(rsa_key(), kid="k1"))).subject == "jwt:alice"
    assert len(fetches) == 1  # answered from the known keys; the refresh runs behind it
    await asyncio.sleep(0.05)
    assert len(fetches) == 2


@pytest.mark.anyio
async def test_a_token_subject_cannot_take_an_api_key_callers_identity() -> None:
    key_holder = ApiKeyAuthenticator(["default:" + "k" * 16]).authenticate("k" * 16)
    assert key_holder is not None
    assert key_holder.subject == "api-key:default"
    principal = await verify(hs_settings(), hs256(sub="api-key:default"))
    assert principal.subject == "jwt:api-key:default"
