"""Trusted-proxy handling: the client address and scheme from ``X-Forwarded-*`` headers.

A header is believed only when the peer that sent it is trusted (``--forwarded-allow-ips``).
For ``X-Forwarded-For`` the list is walked from the right, skipping the proxies listed by
address; the first address that is not one is the client (anything further left could be
forged by it). ``*`` trusts any peer to be a proxy, but never makes an address inside the
header a trusted proxy (RFC 7239 §7.4: any hop may have written it), so with ``*`` alone the
client is the right-most entry: the address the proxy that connected to us saw.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_FORWARDED_SCHEMES = frozenset({"http", "https", "ws", "wss"})


class TrustedProxies:
    """A set of trusted peers: IPs, CIDR networks, ``unix:`` (Unix socket peers) or ``*``."""

    __slots__ = ("_addresses", "_literals", "_networks", "trust_all", "trust_unix")

    def __init__(self, spec: str | Iterable[str]) -> None:
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        self.trust_all = False
        self.trust_unix = False
        self._addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        self._networks: list[IPNetwork] = []
        # Non-IP names (e.g. a hostname the peer is known by) are compared as strings.
        self._literals: set[str] = set()
        for raw in items:
            item = raw.strip()
            if not item:
                continue
            if item == "*":
                self.trust_all = True
            elif item == "unix:":
                self.trust_unix = True
            elif "/" in item:
                self._networks.append(ipaddress.ip_network(item, strict=False))
            else:
                try:
                    self._addresses.add(ipaddress.ip_address(item))
                except ValueError:
                    self._literals.add(item)

    def is_trusted(self, host: str | None) -> bool:
        """Whether the peer ``host`` (``None`` for a Unix socket peer) may send proxy headers."""
        return self.trust_all or self.is_listed(host)

    def is_listed(self, host: str | None) -> bool:
        """Whether ``host`` is a proxy named by address, CIDR or ``unix:`` (``*`` aside)."""
        if host is None:
            return self.trust_unix
        if host in self._literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if address in self._addresses:
            return True
        return any(address in network for network in self._networks)

    def client_from_forwarded_for(self, value: str) -> str | None:
        """The right-most host of an ``X-Forwarded-For`` value that is not a listed proxy."""
        hosts = [host.strip() for host in value.split(",")]
        hosts = [host for host in hosts if host]
        if not hosts:
            return None
        for host in reversed(hosts):
            if not self.is_listed(host):
                return host
        # Every hop is a listed proxy, so each entry was vouched for by the trusted hop to its
        # right: the left-most is the closest we know to the client.
        return hosts[0]


def apply_proxy_headers(
    trusted: TrustedProxies,
    client: tuple[str, int] | None,
    scheme: str,
    headers: list[tuple[bytes, bytes]],
) -> tuple[tuple[str, int] | None, str]:
    """Return the ``(client, scheme)`` a request's scope should carry.

    Unchanged unless the direct peer is trusted and sent ``X-Forwarded-For`` or
    ``X-Forwarded-Proto``.
    """
    if not trusted.is_trusted(client[0] if client else None):
        return client, scheme
    forwarded_for: bytes | None = None
    forwarded_proto: bytes | None = None
    for name, value in headers:
        if name == b"x-forwarded-for":
            # Repeated lines form one list, in order (RFC 9110 §5.3).
            forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
        elif name == b"x-forwarded-proto":
            forwarded_proto = value
    if forwarded_proto is not None:
        proto = forwarded_proto.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
        if proto in _FORWARDED_SCHEMES:
            websocket = scheme in ("ws", "wss")
            if websocket:
                proto = {"http": "ws", "https": "wss"}.get(proto, proto)
            else:
                proto = {"ws": "http", "wss": "https"}.get(proto, proto)
            scheme = proto
    if forwarded_for is not None:
        host = trusted.client_from_forwarded_for(forwarded_for.decode("latin-1"))
        if host is not None:
            client = (host, 0)
    return client, scheme
