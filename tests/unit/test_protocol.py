"""The server protocol sends a response's head with its body: one write per plain response."""

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from cme_entrypoints.http.protocol import ServerProtocol

Scope = dict[str, Any]


class RecordingTransport:
    """Keeps each write apart: what the protocol hands the socket, call by call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """Echoes the request body; /stream answers in two body chunks, /nothing with a 204."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/nothing":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
        return
    answer = body or b"hello"
    headers = [(b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def connection() -> tuple[ServerProtocol, RecordingTransport]:
    config = Config(app=app, http=ServerProtocol, lifespan="off", server_header=False)
    config.load()
    protocol = ServerProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


async def writes_after(transport: RecordingTransport, responses: int) -> list[bytes]:
    for _ in range(200):
        if sum(w.count(b"HTTP/1.1 ") for w in transport.writes) >= responses:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)  # and anything a wrong protocol would write late
    return transport.writes


@pytest.mark.anyio
async def test_a_response_goes_out_in_one_write() -> None:
    protocol, transport = connection()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    [write] = await writes_after(transport, 1)
    assert write.startswith(b"HTTP/1.1 200 OK\r\n")
    assert write.endswith(b"\r\n\r\nhello")


@pytest.mark.anyio
async def test_a_head_request_and_an_empty_body_still_send_their_head() -> None:
    protocol, transport = connection()
    protocol.data_received(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    [head] = await writes_after(transport, 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"content-length: 5\r\n\r\n")
    transport.writes.clear()
    protocol.data_received(b"DELETE /nothing HTTP/1.1\r\nHost: t\r\n\r\n")
    [empty] = await writes_after(transport, 1)
    assert empty.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert empty.endswith(b"\r\n\r\n")


@pytest.mark.anyio
async def test_pipelined_requests_get_each_their_own_answer_in_order() -> None:
    protocol, transport = connection()
    request = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n%s"
    protocol.data_received(request % b"a" + request % b"b" + b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    writes = await writes_after(transport, 3)
    assert len(writes) == 3
    assert [w.rpartition(b"\r\n\r\n")[2] for w in writes] == [b"a", b"b", b""]


@pytest.mark.anyio
async def test_a_100_continue_goes_first_and_the_answer_after_it() -> None:
    protocol, transport = connection()
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    for _ in range(200):
        if transport.writes:
            break
        await asyncio.sleep(0.005)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    protocol.data_received(b"abc")
    writes = await writes_after(transport, 2)
    assert len(writes) == 2
    assert writes[1].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[1].endswith(b"\r\n\r\nabc")


@pytest.mark.anyio
async def test_a_streamed_response_sends_its_head_with_the_first_chunk() -> None:
    protocol, transport = connection()
    protocol.data_received(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    writes = await writes_after(transport, 1)
    for _ in range(200):
        if len(writes) == 2:
            break
        await asyncio.sleep(0.005)
    first, second = writes
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert first.endswith(b"transfer-encoding: chunked\r\n\r\n3\r\none\r\n")
    assert second == b"3\r\ntwo\r\n0\r\n\r\n"


@pytest.mark.anyio
async def test_a_connection_close_request_is_answered_before_the_close() -> None:
    protocol, transport = connection()
    protocol.data_received(b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    [head] = await writes_after(transport, 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.closed
