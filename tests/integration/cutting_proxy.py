"""A TCP proxy to PostgreSQL that can lose the answer to one chosen statement, deterministically.

Armed with a marker (b"COMMIT"), it forwards the next client message holding it, waits until
PostgreSQL has answered it in full (ReadyForQuery), drops that answer and closes both sides:
the statement took effect, and the client only saw its connection break.
"""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


class CuttingProxy:
    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._marker: bytes | None = None
        self.cuts = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()

    def arm(self, marker: bytes) -> None:
        self._marker = marker

    @contextmanager
    def running(self) -> Iterator["CuttingProxy"]:
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self._started.wait(5)
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        cut = asyncio.Event()

        async def upstream() -> None:
            while chunk := await client_in.read(65536):
                if self._marker is not None and self._marker in chunk:
                    self._marker = None
                    cut.set()  # before the server can answer
                server_out.write(chunk)
                await server_out.drain()
            server_out.close()  # the client went away: so does its server session

        async def downstream() -> None:
            swallowed = b""
            while chunk := await server_in.read(65536):
                if cut.is_set():
                    swallowed += chunk
                    if READY_FOR_QUERY in swallowed:
                        self.cuts += 1
                        return
                    continue
                client_out.write(chunk)
                await client_out.drain()

        forwarding = asyncio.ensure_future(upstream())
        with suppress(ConnectionError):
            await downstream()
        forwarding.cancel()
        with suppress(asyncio.CancelledError, ConnectionError):
            await forwarding
        for writer in (client_out, server_out):
            writer.close()
