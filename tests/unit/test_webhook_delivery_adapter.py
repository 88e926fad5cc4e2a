"""The webhook sender against real loopback receivers: signatures, no redirects, timeouts,
refused addresses, the check at connect time, and TLS."""

import asyncio
import datetime
import ipaddress
import socket
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from cme_adapters.webhooks.addresses import (
    AddressPolicy,
    IPAddress,
    TargetRefused,
    UrlTargets,
    refused_address,
    resolve,
)
from cme_adapters.webhooks.sender import BODY_LIMIT, HttpWebhookSender
from cme_domain.webhooks import new_secret

pytestmark = pytest.mark.anyio

BODY = '{"type":"product.created","data":{"name":"Lämpe  ","tags":[]}}'.encode()
MESSAGE_ID = "msg_0123456789abcdef_7"
PUBLIC = ipaddress.ip_address("93.184.216.34")
LOOPBACK = ipaddress.ip_address("127.0.0.1")


@attrs.define
class Received:
    request_line: str
    headers: dict[str, str]
    body: bytes


@attrs.define
class Receiver:
    """A minimal HTTP/1.1 server on 127.0.0.1: records what arrives, answers as it is told."""

    status: int = 204
    extra_headers: str = ""
    answers: bool = True
    body: bytes = b""
    endless: bool = False  # a body that never ends
    raw: bytes | None = None  # sent as it is instead of an HTTP answer
    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[Received] = attrs.Factory(list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            fields = (line.partition(":") for line in head[1:] if line)
            headers = {name.strip().lower(): value.strip() for name, _, value in fields}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(head[0], headers, body))
            if not self.answers:
                await reader.read()  # until the sender gives up and hangs up
                return
            if self.raw is not None:
                writer.write(self.raw)
                await writer.drain()
                return
            length = 10**15 if self.endless else len(self.body)
            writer.write(
                f"HTTP/1.1 {self.status} Whatever\r\ncontent-length: {length}\r\n"
                f"{self.extra_headers}\r\n".encode()
                + self.body
            )
            await writer.drain()
            while self.endless:  # until the sender hangs up
                writer.write(b"x" * 65536)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=receiver.tls)
    receiver.port = server.sockets[0].getsockname()[1]
    async with server:
        yield receiver


@asynccontextmanager
async def sending(policy: AddressPolicy, **options: object) -> AsyncIterator[HttpWebhookSender]:
    sender = HttpWebhookSender(policy, **options)  # type: ignore[arg-type]
    try:
        yield sender
    finally:
        await sender.close()


def private_ok() -> AddressPolicy:
    return AddressPolicy(allow_private=True)


def public_only(resolver: object = resolve) -> AddressPolicy:
    return AddressPolicy(allow_private=False, resolver=resolver)  # type: ignore[arg-type]


class Answers:
    """A resolver that gives the next prepared answer on each lookup, and logs them."""

    def __init__(self, *answers: list[IPAddress]) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append((host, port))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def test_a_delivery_arrives_byte_for_byte_and_its_signature_verifies() -> None:
    secret = new_secret()
    async with serving(Receiver(status=204)) as receiver, sending(private_ok()) as sender:
        url = f"http://127.0.0.1:{receiver.port}/hooks/in;v=1?team=a&x=%20"
        answer = await sender.send(url, secret, MESSAGE_ID, BODY)
    assert (answer.status_code, answer.error, answer.acknowledged) == (204, None, True)
    assert 0 < answer.seconds < 2
    [got] = receiver.requests
    assert got.request_line == "POST /hooks/in;v=1?team=a&x=%20 HTTP/1.1"
    assert got.body == BODY
    assert Webhook(secret).verify(got.body, got.headers) == {
        "type": "product.created",
        "data": {"name": "Lämpe  ", "tags": []},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(got.body, got.headers)
    assert got.headers["webhook-id"] == MESSAGE_ID
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "cme-webhooks"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"


async def test_a_redirect_is_an_answer_not_followed() -> None:
    async with serving(Receiver()) as elsewhere, serving(Receiver(status=302)) as redirecting:
        redirecting.extra_headers = f"location: http://127.0.0.1:{elsewhere.port}/\r\n"
        async with sending(private_ok()) as sender:
            answer = await sender.send(
                f"http://127.0.0.1:{redirecting.port}/", new_secret(), MESSAGE_ID, BODY
            )
    assert (answer.status_code, answer.error, answer.acknowledged) == (302, None, False)
    assert len(redirecting.requests) == 1
    assert elsewhere.connections == 0


async def test_a_server_error_is_its_status() -> None:
    body = b"x" * (BODY_LIMIT * 20)  # more than is read
    async with serving(Receiver(status=500, body=body)) as receiver, sending(private_ok()) as s:
        answer = await s.send(f"http://127.0.0.1:{receiver.port}/", new_secret(), "m", BODY)
    assert (answer.status_code, answer.error, answer.acknowledged) == (500, None, False)


async def test_an_endless_answer_is_cut_short_not_read_to_the_timeout() -> None:
    async with (
        serving(Receiver(status=200, endless=True)) as receiver,
        sending(private_ok(), timeout=5) as sender,
    ):
        answer = await sender.send(f"http://127.0.0.1:{receiver.port}/", new_secret(), "m", BODY)
    assert (answer.status_code, answer.error) == (200, None)
    assert answer.seconds < 2


async def test_an_answer_that_is_not_http_is_an_error() -> None:
    receiver = Receiver(raw=b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    async with serving(receiver), sending(private_ok(), timeout=2) as sender:
        answer = await sender.send(f"http://127.0.0.1:{receiver.port}/", new_secret(), "m", BODY)
    assert answer.status_code is None
    assert answer.error is not None
    assert answer.error.startswith("protocol error: ")
    assert "\n" not in answer.error


async def test_a_receiver_that_never_answers_is_a_timeout() -> None:
    async with (
        serving(Receiver(answers=False)) as receiver,
        sending(private_ok(), timeout=0.5) as sender,
    ):
        started = time.monotonic()
        answer = await sender.send(f"http://127.0.0.1:{receiver.port}/", new_secret(), "m", BODY)
        took = time.monotonic() - started
    assert answer.status_code is None
    assert answer.error == "no answer within 0.5 s"
    assert 0.4 < took < 1.5
    assert len(receiver.requests) == 1  # it did arrive; the answer never came


async def test_a_closed_port_is_an_error_not_an_exception() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with sending(private_ok(), timeout=2) as sender:
        answer = await sender.send(f"http://127.0.0.1:{port}/", new_secret(), "m", BODY)
    assert (answer.status_code, answer.error) == (None, "connection refused")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/", "must be an https URL"),
        ("https://127.0.0.1:{port}/", "127.0.0.1 is a loopback address"),
        ("https://localhost:{port}/", "is a loopback address"),
        ("https://[::ffff:127.0.0.1]:{port}/", "embeds 127.0.0.1, a loopback address"),
        ("https://[2002:7f00:1::]:{port}/", "embeds 127.0.0.1, a loopback address"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local"),
        ("https://10.1.2.3/", "10.1.2.3 is a private address"),
        ("https://[fd00::1]/", "fd00::1 is a unique-local address"),
    ],
)
async def test_a_private_target_is_refused_before_any_connection(url: str, reason: str) -> None:
    async with serving(Receiver()) as receiver, sending(public_only(), timeout=0.5) as sender:
        url = url.format(port=receiver.port)
        answer = await sender.send(url, new_secret(), "m", BODY)
        refusal = await UrlTargets(public_only()).refusal(url)
    assert answer.status_code is None
    assert answer.error is not None
    assert answer.error.startswith("refused: ")
    assert reason in answer.error
    assert refusal is not None
    assert reason in refusal
    assert receiver.connections == 0


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),  # NAT64 of a public address: how IPv6-only hosts get out
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("::1", "::1 is a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fd00:ec2::254", "a unique-local address"),
        ("fec0::1", "a site-local address"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff0e::1", "a multicast address"),
        ("100.64.0.1", "not a public address"),
        ("::ffff:10.0.0.1", "embeds 10.0.0.1, a private address"),
        ("2002:7f00:1::", "2002:7f00:1:: embeds 127.0.0.1, a loopback address"),
        ("64:ff9b::a9fe:a9fe", "embeds 169.254.169.254, a link-local address"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "embeds 127.0.0.1"),  # teredo
        ("::8.8.8.8", "a reserved address"),  # IPv4-compatible: deprecated, unroutable
    ],
)
def test_the_address_policy(address: str, reason: str | None) -> None:
    found = refused_address(ipaddress.ip_address(address))
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert reason in found


async def test_one_refused_address_among_public_ones_refuses_the_host() -> None:
    mixed = Answers([PUBLIC, ipaddress.ip_address("10.0.0.7")])
    with pytest.raises(TargetRefused, match=r"10\.0\.0\.7 is a private address"):
        await public_only(mixed).checked_addresses("hooks.example.test", 443)
    assert await AddressPolicy(True, mixed).checked_addresses("h.test", 443) == mixed.answers[0]


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    async def nowhere(host: str, port: int) -> list[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    policy = public_only(nowhere)
    with pytest.raises(TargetRefused, match=r"nowhere\.test does not resolve"):
        await policy.checked_addresses("nowhere.test", 443)
    assert "does not resolve" in (await UrlTargets(policy).refusal("https://nowhere.test/") or "")
    async with sending(policy) as sender:
        answer = await sender.send("https://nowhere.test/", new_secret(), "m", BODY)
    assert answer.error is not None
    assert answer.error.startswith("refused: nowhere.test does not resolve")


async def test_a_literal_needs_no_lookup_and_a_public_url_passes() -> None:
    assert await resolve("::1", 443) == [ipaddress.ip_address("::1")]
    assert LOOPBACK in await resolve("localhost", 443)
    assert await UrlTargets(public_only(Answers([PUBLIC]))).refusal("https://a.test/") is None


async def test_the_check_is_made_at_connect_time_on_the_address_connected_to() -> None:
    # The name pointed somewhere public when the endpoint was created, and at loopback by
    # the time of the delivery (DNS rebinding).
    rebinding = Answers([PUBLIC], [LOOPBACK])
    async with serving(Receiver()) as receiver, sending(public_only(rebinding)) as sender:
        url = f"https://hooks.example.test:{receiver.port}/"
        assert await UrlTargets(public_only(rebinding)).refusal(url) is None
        answer = await sender.send(url, new_secret(), "m", BODY)
    assert answer.error == "refused: 127.0.0.1 is a loopback address"
    assert rebinding.lookups == [("hooks.example.test", receiver.port)] * 2
    assert receiver.connections == 0


async def test_the_connection_goes_to_the_checked_address_not_the_name_again() -> None:
    lookups = Answers([LOOPBACK])
    async with serving(Receiver()) as receiver, sending(AddressPolicy(True, lookups)) as sender:
        url = f"http://hooks.example.test:{receiver.port}/"  # .test never resolves for real
        answer = await sender.send(url, new_secret(), "m", BODY)
    assert answer.status_code == 204
    assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"


@contextmanager
def localhost_certificate() -> Iterator[tuple[ssl.SSLContext, str]]:
    """A server context with a self-signed certificate for the name localhost only, and the
    certificate in PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_text(pem)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_file, key_file)
    yield server, pem


async def test_https_end_to_end_verifies_the_urls_host_name() -> None:
    secret = new_secret()
    names: list[str | None] = []
    with localhost_certificate() as (server_tls, pem):
        server_tls.sni_callback = lambda _sock, name, _ctx: names.append(name)
        trusting = ssl.create_default_context(cadata=pem)
        async with serving(Receiver(tls=server_tls)) as receiver:
            async with sending(private_ok(), ssl_context=trusting) as sender:
                answer = await sender.send(
                    f"https://localhost:{receiver.port}/in", secret, MESSAGE_ID, BODY
                )
                # The same server by its address: the certificate does not name it.
                by_address = await sender.send(
                    f"https://127.0.0.1:{receiver.port}/in", secret, MESSAGE_ID, BODY
                )
            async with sending(private_ok()) as default_trust:
                untrusted = await default_trust.send(
                    f"https://localhost:{receiver.port}/in", secret, MESSAGE_ID, BODY
                )
    assert (answer.status_code, answer.error) == (204, None)
    assert Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert names[0] == "localhost"  # SNI carries the URL's name, not the address connected to
    assert by_address.status_code is None
    assert by_address.error is not None
    assert "certificate verify failed" in by_address.error
    assert "127.0.0.1" in by_address.error
    assert untrusted.status_code is None
    assert untrusted.error is not None
    assert untrusted.error.startswith("TLS: certificate verify failed")
    assert len(receiver.requests) == 1
