"""Where a webhook may point: HTTPS, public addresses, unless the config allows more.

Checked twice: when a subscription is made (a clear error naming `url`) and
at every connection, by the resolver the HTTP client uses, so a name that
later resolves to a private address (DNS rebinding) is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from config.section_deliveries import DeliverySettings


class TargetRefused(ValueError):
    """webhook target refused"""


def _networks(settings: DeliverySettings):
    return [ipaddress.ip_network(c, strict=False) for c in settings.allow_private]


# Not globally routable, though Python 3.11's `is_global` says so: the IETF
# protocol assignments (192.0.0.0/24, e.g. 192.0.0.192) and 6to4
# (2002::/16, which tunnels to any IPv4 address, private ones included).
_NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("2002::/16"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _unwrap(addr: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """The IPv4 address an IPv4-mapped or NAT64 (64:ff9b::/96) address reaches."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped:
            return addr.ipv4_mapped
        if addr in _NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def address_allowed(ip: str, settings: DeliverySettings) -> str | None:
    """None if `ip` may be reached, else why not. Only globally routable
    addresses by default (an allowlist of what may be reached, not a denylist)."""
    addr = _unwrap(ipaddress.ip_address(ip.split("%", 1)[0]))
    if addr.is_loopback:
        return None if settings.allow_loopback else f"{addr} is a loopback address (delivery.allow_loopback)"
    if any(addr in n for n in _networks(settings)):
        return None
    if not addr.is_global or addr.is_multicast or any(addr in n for n in _NOT_GLOBAL if n.version == addr.version):
        return f"{addr} is not a globally routable address (delivery.allow_private)"
    return None


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, settings: DeliverySettings) -> None:
    """Static checks (no DNS): scheme, host, literal addresses. Raises TargetRefused."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise TargetRefused("is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise TargetRefused("must be an https:// URL with a host")
    if parts.username or parts.password:
        raise TargetRefused("must not carry credentials")
    if parts.scheme == "http" and not _is_loopback_host(host):
        raise TargetRefused("must use https:// (plain http only for loopback)")
    if host == "localhost" and not settings.allow_loopback:
        raise TargetRefused("localhost is loopback (delivery.allow_loopback)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    reason = address_allowed(host, settings)
    if reason:
        raise TargetRefused(reason)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, minus the addresses the settings refuse."""

    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        self.inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if address_allowed(r["host"], self.settings) is None]
        if not allowed:
            reasons = {address_allowed(r["host"], self.settings) for r in results}
            raise OSError(f"{host}: refused: {'; '.join(sorted(r for r in reasons if r))}")
        return allowed

    async def close(self) -> None:
        await self.inner.close()
