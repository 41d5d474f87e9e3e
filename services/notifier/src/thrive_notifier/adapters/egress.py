"""SSRF protection for outgoing webhooks: refuse internal addresses, pin the checked IP.

A URL is checked when it is resolved, not when it is saved: the webhook sender resolves the
host itself, refuses loopback, private, link-local (cloud metadata), unspecified, multicast and
other non-global addresses unless allow-listed, then connects to exactly the address it
checked (so DNS rebinding between check and connect cannot bypass it). Every redirect hop
goes through the same check again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

# Metadata endpoints that are not covered by the generic ranges on every cloud.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}


class DestinationRefused(Exception):
    """The destination is not allowed for outgoing webhooks; retrying cannot help."""


def _unwrap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why an address is not a public destination, or None when it is one."""
    ip = _unwrap(ip)
    if ip in _METADATA:
        return "metadata"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link_local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return name
    if not ip.is_global:
        return "not_global"
    return None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Where webhooks may go: public addresses, plus explicitly allow-listed networks."""

    allow_networks: tuple[IPNetwork, ...] = ()
    require_https: bool = True

    @classmethod
    def from_strings(cls, networks: Iterable[str], *, require_https: bool) -> EgressPolicy:
        return cls(
            allow_networks=tuple(ipaddress.ip_network(n, strict=False) for n in networks),
            require_https=require_https,
        )

    def check_ip(self, ip: IPAddress) -> None:
        """Raise DestinationRefused unless the address is public or allow-listed."""
        if any(_unwrap(ip) in net or ip in net for net in self.allow_networks):
            return
        reason = forbidden_reason(ip)
        if reason:
            raise DestinationRefused(f"{ip} is a {reason} address")

    def check_url(self, url: str) -> tuple[str, str, int]:
        """Scheme, host and port of a well-formed webhook URL, or DestinationRefused."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise DestinationRefused(f"not a valid URL: {exc}") from exc
        scheme = parts.scheme.lower()
        allowed = ("https",) if self.require_https else ("https", "http")
        if scheme not in allowed:
            raise DestinationRefused(f"scheme {scheme or '(none)'} is not allowed")
        if not parts.hostname:
            raise DestinationRefused("URL has no host")
        if parts.username or parts.password:
            raise DestinationRefused("credentials in the URL are not allowed")
        return scheme, parts.hostname, port or (443 if scheme == "https" else 80)

    def check_literal(self, url: str) -> None:
        """Cheap check when a URL is saved: well-formed, and not a refused IP literal."""
        _scheme, host, _port = self.check_url(url)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host.lower() == "localhost" or host.lower().endswith(".localhost"):
                self.check_ip(ipaddress.ip_address("127.0.0.1"))
            return
        self.check_ip(ip)

    def choose(self, addresses: Sequence[IPAddress]) -> IPAddress:
        """The address to connect to; refuses if ANY resolved address is forbidden."""
        if not addresses:
            raise DestinationRefused("host did not resolve")
        for ip in addresses:
            self.check_ip(ip)
        return addresses[0]


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve through the OS (getaddrinfo), IP literals without a lookup."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from exc
    seen: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in seen:
            seen.append(ip)
    return seen
