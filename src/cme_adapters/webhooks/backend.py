"""An httpcore network backend that connects only where the address policy allows."""

from collections.abc import Iterable

import httpcore

from cme_adapters.webhooks.addresses import AddressPolicy, TargetRefused


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows, checked on every new connection.

    It connects to the checked address itself, never to the name again, so a DNS answer that
    changes between the check and the connect cannot slip through. TLS still verifies the
    URL's host name: httpcore passes the origin's host to start_tls as server_hostname.
    """

    def __init__(
        self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for ip in await self._policy.checked_addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error  # the next address may answer, as with a dual-stack host
        assert failure is not None  # checked_addresses returns at least one
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("a unix socket is no webhook target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
