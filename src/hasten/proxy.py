"""Trusted-proxy handling: the client address, scheme and Host from forwarding headers.

A header is believed only when the peer that sent it is trusted (``--forwarded-allow-ips``).
The list of hops in ``X-Forwarded-For`` or RFC 7239 ``Forwarded`` is walked from the right,
skipping the proxies listed by address; the first hop that is not one is the client
(anything further left could be forged by it). ``*`` trusts any peer to be a proxy, but
never makes an address inside the header a trusted proxy (RFC 7239 §7.4: any hop may have
written it), so with ``*`` alone the client is the right-most entry: the address the proxy
that connected to us saw.

When a request carries both kinds, ``X-Forwarded-*`` wins and ``Forwarded`` is ignored:
most proxies (nginx as usually configured, Envoy, AWS ALB) set ``X-Forwarded-For`` and
pass a client's ``Forwarded`` through untouched, so preferring ``Forwarded`` would let any
client behind them choose its address. A forwarded host rewrites the ``host`` field, where
ASGI apps and frameworks build URLs from; ``scope["server"]`` stays the socket's address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Final

from hasten.forwarded import parse_forwarded, parse_node
from hasten.logs import error_logger
from hasten.protocols.http1.checks import is_valid_host

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_FORWARDED_SCHEMES: Final = frozenset({"http", "https", "ws", "wss"})
_DEFAULT_PORTS: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_PORT: Final = re.compile(r"[0-9]{1,5}")


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

    def client_hop(self, hops: Sequence[str]) -> int:
        """The index of the client in a list of hops, left to right: the right-most hop
        that is not a listed proxy, the one trusted walk for every forwarding header."""
        for index in range(len(hops) - 1, -1, -1):
            if not self.is_listed(hops[index]):
                return index
        # Every hop is a listed proxy, so each entry was vouched for by the trusted hop to its
        # right: the left-most is the closest we know to the client.
        return 0

    def client_from_forwarded_for(self, value: str) -> str | None:
        """The right-most host of an ``X-Forwarded-For`` value that is not a listed proxy."""
        hosts = [host.strip() for host in value.split(",")]
        hosts = [host for host in hosts if host]
        return hosts[self.client_hop(hosts)] if hosts else None


def apply_proxy_headers(
    trusted: TrustedProxies,
    client: tuple[str, int] | None,
    scheme: str,
    headers: list[tuple[bytes, bytes]],
) -> tuple[tuple[str, int] | None, str, list[tuple[bytes, bytes]]]:
    """Return the ``(client, scheme, headers)`` a request's scope should carry.

    Unchanged unless the direct peer is trusted. ``X-Forwarded-*`` fields, when any is
    present, are used and ``Forwarded`` is not; otherwise ``Forwarded`` is (see the module
    docstring for why). A forwarded host replaces the ``host`` field; ``headers`` is then
    a new list, otherwise the one given.
    """
    if not trusted.is_trusted(client[0] if client else None):
        return client, scheme, headers
    forwarded: list[bytes] = []
    forwarded_for: bytes | None = None
    forwarded_proto: bytes | None = None
    forwarded_host: bytes | None = None
    forwarded_port: bytes | None = None
    for name, value in headers:
        if name == b"x-forwarded-for":
            # Repeated lines form one list, in order (RFC 9110 §5.3).
            forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
        elif name == b"x-forwarded-proto":
            forwarded_proto = value
        elif name == b"x-forwarded-host":
            forwarded_host = value
        elif name == b"x-forwarded-port":
            forwarded_port = value
        elif name == b"forwarded":
            forwarded.append(value)
    if (
        forwarded_for is None
        and forwarded_proto is None
        and forwarded_host is None
        and forwarded_port is None
    ):
        if forwarded:
            return _apply_forwarded(trusted, client, scheme, headers, forwarded)
        return client, scheme, headers
    if forwarded_proto is not None:
        scheme = _forwarded_scheme(_last_entry(forwarded_proto), scheme)
    if forwarded_for is not None:
        host = trusted.client_from_forwarded_for(forwarded_for.decode("latin-1"))
        if host is not None:
            client = (host, 0)
    if forwarded_host is not None or forwarded_port is not None:
        authority = _forwarded_authority(headers, forwarded_host, forwarded_port, scheme)
        if authority is not None:
            headers = _with_host(headers, authority)
    return client, scheme, headers


def _apply_forwarded(
    trusted: TrustedProxies,
    client: tuple[str, int] | None,
    scheme: str,
    headers: list[tuple[bytes, bytes]],
    lines: list[bytes],
) -> tuple[tuple[str, int] | None, str, list[tuple[bytes, bytes]]]:
    """RFC 7239: the client is the ``for`` of the element the walk stops at, and that
    element's ``proto`` and ``host`` are what the client asked the first proxy for."""
    # Each line is parsed alone: a quoted string never spans lines, so a client's bad line
    # can't swallow the element a proxy added on a line of its own.
    elements = [element for line in lines for element in parse_forwarded(line)]
    if not elements:
        return client, scheme, headers
    nodes = [
        parse_node(element["for"]) if element is not None and "for" in element else None
        for element in elements
    ]
    # A malformed element, or one without a usable ``for``, is no listed proxy ("" never
    # is): the walk stops there rather than believe what is to its left.
    index = trusted.client_hop([node[0] if node is not None else "" for node in nodes])
    element, node = elements[index], nodes[index]
    if element is None or ("for" in element and node is None):
        error_logger.debug("Ignoring a malformed Forwarded header from %s", client)
        return client, scheme, headers
    if node is not None:
        client = node
    if "proto" in element:
        scheme = _forwarded_scheme(element["proto"].lower(), scheme)
    if "host" in element:
        host = element["host"].encode("latin-1")
        if _is_valid_host(host):
            headers = _with_host(headers, host)
    return client, scheme, headers


def _forwarded_scheme(proto: str, scheme: str) -> str:
    """The scheme a forwarded protocol names, in the kind (HTTP or WebSocket) of ``scheme``;
    ``scheme`` itself for anything else."""
    proto = proto.lower()
    if proto not in _FORWARDED_SCHEMES:
        return scheme
    if scheme in ("ws", "wss"):
        return {"http": "ws", "https": "wss"}.get(proto, proto)
    return {"ws": "http", "wss": "https"}.get(proto, proto)


def _last_entry(value: bytes) -> str:
    """The right-most member of a list-valued field: the one the nearest proxy wrote."""
    return value.decode("latin-1").rsplit(",", 1)[-1].strip()


def _forwarded_authority(
    headers: list[tuple[bytes, bytes]], host: bytes | None, port: bytes | None, scheme: str
) -> bytes | None:
    """The Host that ``X-Forwarded-Host`` and ``X-Forwarded-Port`` describe, or ``None``
    when they don't describe a valid one."""
    if host is not None:
        authority = _last_entry(host).encode("latin-1")
    else:
        authority = next((value for name, value in headers if name == b"host"), b"")
    if not _is_valid_host(authority):
        return None
    if port is not None:
        port_text = _last_entry(port)
        if _PORT.fullmatch(port_text) and 0 < int(port_text) <= 65535:
            if authority.startswith(b"["):
                authority = authority[: authority.find(b"]") + 1]
            else:
                authority = authority.partition(b":")[0]
            if int(port_text) != _DEFAULT_PORTS.get(scheme):
                authority += b":" + port_text.encode("ascii")
    return authority


def _with_host(headers: list[tuple[bytes, bytes]], host: bytes) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``host`` as the Host field, in place of the one the proxy sent."""
    replaced = [(name, host if name == b"host" else value) for name, value in headers]
    if not any(name == b"host" for name, _ in headers):
        replaced.append((b"host", host))
    return replaced


def _is_valid_host(value: bytes) -> bool:
    return bool(value) and is_valid_host(value)
