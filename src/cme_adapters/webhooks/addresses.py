"""Which addresses webhook deliveries may go to: public ones, unless private ones are allowed."""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

import attrs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_UNIQUE_LOCAL: Final = ipaddress.IPv6Network("fc00::/7")
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}


class TargetRefused(Exception):
    """A delivery target the policy will not connect to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refused_address(ip: IPAddress) -> str | None:
    """Why a delivery must not connect to ip, or None for a public address."""
    inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if inner is not None:
        # The packets end up at the IPv4 address, so it alone decides; Python's flags on the
        # IPv6 form differ between versions (3.11 calls ::ffff:10.0.0.1 global).
        phrase = _refused(inner)
        return f"{ip} embeds {inner}, {phrase}" if phrase else None
    phrase = _refused(ip)
    return f"{ip} is {phrase}" if phrase else None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's, de-obfuscated: where the traffic is relayed to
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _refused(ip: IPAddress) -> str | None:
    # The specific flags first, for a useful reason; is_global last catches the rest
    # (100.64.0.0/10 and the like). Multicast and site-local must be explicit: Python
    # counts some of them as global.
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in _UNIQUE_LOCAL:
        return "a unique-local address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


RESOLVE_TIMEOUT_SECONDS: Final = 5.0


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses host stands for, in the resolver's order, without repeats."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass  # a name, not a literal
    # Bounded: a resolver that never answers must not hold a request or a delivery forever.
    async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: dict[IPAddress, None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            found[ipaddress.ip_address(sockaddr[0])] = None
    return list(found)


@attrs.frozen
class AddressPolicy:
    """allow_private lets deliveries reach loopback and private networks: tests, local setups."""

    allow_private: bool
    resolver: Resolver = resolve

    async def checked_addresses(self, host: str, port: int) -> list[IPAddress]:
        """host's addresses, every one of them allowed; else TargetRefused."""
        try:
            addresses = await self.resolver(host, port)
        except TimeoutError:
            raise TargetRefused(
                f"{host} did not resolve within {RESOLVE_TIMEOUT_SECONDS:g} s"
            ) from None
        except (OSError, UnicodeError) as error:  # gaierror is an OSError
            raise TargetRefused(f"{host} does not resolve: {error}") from error
        if not addresses:
            raise TargetRefused(f"{host} does not resolve")
        if not self.allow_private:
            # Any one refused refuses them all: which one a connection would pick is not ours
            # to choose.
            for ip in addresses:
                reason = refused_address(ip)
                if reason:
                    raise TargetRefused(reason)
        return addresses

    def scheme_refusal(self, scheme: str) -> str | None:
        if scheme == "https" or (scheme == "http" and self.allow_private):
            return None
        return "must be an https URL"


@attrs.frozen
class UrlTargets:
    """The TargetCheck port: whether deliveries to a URL would be refused now."""

    policy: AddressPolicy

    async def refusal(self, url: str) -> str | None:
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)
        except ValueError:
            return "must be an absolute URL"
        reason = self.policy.scheme_refusal(parts.scheme)
        if reason or not parts.hostname:
            return reason or "must name a host"
        try:
            await self.policy.checked_addresses(parts.hostname, port)
        except TargetRefused as refused:
            return refused.reason
        return None
