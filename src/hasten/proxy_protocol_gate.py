"""``--proxy-protocol``: read the PROXY header off each accepted socket before it becomes a
connection, and tell the connection whom the header names.

The header is read from the raw socket, before the event loop makes a transport of it, so
it precedes the TLS handshake as the spec requires, and HTTP/1.1, HTTP/2 and WebSockets
never see it. Bytes are peeked (``MSG_PEEK``) and only the header's are consumed: what
follows stays in the kernel for the transport. Until the header is whole, every byte read
is part of it, so those are consumed as they come and readiness can't spin.

The client the header names reaches the protocols through ``ServerState.proxied_origins``,
keyed by transport (weakly: it lives as long as the connection; by its SSLObject on TLS),
which ``OriginRecorder`` fills when the transport is made; ``connection_origin`` in
``protocols/http1/connection.py`` reads it.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import Callable
from typing import Any, Final

from hasten.logs import error_logger
from hasten.proxy import TrustedProxies
from hasten.proxy_protocol import ProxyHeader, ProxyProtocolError, ProxySSL, parse_proxy_header
from hasten.state import ProxiedOrigin, ProxiedOrigins
from hasten.tls import TLS_VERSIONS, rfc4514_name

ProtocolFactory = Callable[[], asyncio.Protocol]
# Given the accepted socket and the factory of its protocol, makes the connection.
Connect = Callable[[socket.socket, ProtocolFactory], None]

_PEEK_FLAGS: Final = socket.MSG_PEEK


class ProxyProtocolGate:
    """Admits a connection once its PROXY header is read and valid; otherwise closes it,
    without a byte of response (there is no protocol yet to answer in)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        trusted: TrustedProxies,
        origins: ProxiedOrigins,
        *,
        timeout: float,
        max_length: int,
    ) -> None:
        self.loop = loop
        self.trusted = trusted
        self.origins = origins
        self.timeout = timeout
        self.max_length = max_length
        self.reading: set[_HeaderRead] = set()

    def admit(self, sock: socket.socket, factory: ProtocolFactory, connect: Connect) -> None:
        """Read ``sock``'s header, then ``connect`` it; or close it."""
        try:
            peer = sock.getpeername()
        except OSError:
            sock.close()
            return
        host = peer[0] if isinstance(peer, tuple) else None
        if not self.trusted.is_trusted(host):
            # Only a listed proxy may say whom it relays (the spec, §1: "the receiver MUST
            # be configured to only receive the protocol ... from trusted sources").
            error_logger.debug("Closed a connection from %s: not a trusted proxy", host)
            sock.close()
            return
        _HeaderRead(self, sock, factory, connect).start()

    def close(self) -> None:
        """Close the connections whose header has not arrived (the server is stopping)."""
        for read in list(self.reading):
            read.fail("the server is stopping")

    def protocol_factory(self, header: ProxyHeader, factory: ProtocolFactory) -> ProtocolFactory:
        """``factory``, or one that first records the client ``header`` names."""
        if header.local or header.client is None:
            # §2.2 LOCAL (the proxy's own health check), v1 UNKNOWN, v2 UNSPEC or AF_UNIX:
            # the connection's own addresses stand.
            return factory
        origin: ProxiedOrigin = (header.client, proxied_tls_extension(header.ssl))
        return functools.partial(OriginRecorder, self.origins, origin, factory)


class _HeaderRead:
    """One socket's header, read as it arrives, against the clock."""

    __slots__ = ("buffer", "connect", "factory", "fd", "gate", "sock", "timer")

    def __init__(
        self,
        gate: ProxyProtocolGate,
        sock: socket.socket,
        factory: ProtocolFactory,
        connect: Connect,
    ) -> None:
        self.gate = gate
        self.sock = sock
        self.factory = factory
        self.connect = connect
        self.fd = sock.fileno()
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.sock.setblocking(False)
        self.gate.reading.add(self)
        self.timer = self.gate.loop.call_later(self.gate.timeout, self.fail, "timed out")
        self.gate.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(self.gate.max_length - len(self.buffer), _PEEK_FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(str(exc))
            return
        if not data:
            self.fail("closed before its header was complete")
            return
        try:
            header = parse_proxy_header(self.buffer + data, self.gate.max_length)
            if header is None:
                self._consume(len(data))
                self.buffer += data
                return
            self._consume(header.length - len(self.buffer))
        except (ProxyProtocolError, OSError) as exc:
            self.fail(str(exc))
            return
        self._finish()
        self.connect(self.sock, self.gate.protocol_factory(header, self.factory))

    def _consume(self, size: int) -> None:
        # The bytes were peeked, so they are there to take.
        if len(self.sock.recv(size)) != size:
            raise OSError("short read of peeked bytes")

    def _finish(self) -> None:
        self.gate.reading.discard(self)
        self.gate.loop.remove_reader(self.fd)
        if self.timer is not None:
            self.timer.cancel()

    def fail(self, reason: str) -> None:
        self._finish()
        error_logger.debug("Closed a connection without a valid PROXY header: %s", reason)
        self.sock.close()


class OriginRecorder(asyncio.Protocol):
    """The first protocol of a proxied connection: it records whom the PROXY header named
    for the transport, then hands the transport to the real protocol (as ``ALPNDispatch``
    does after a TLS handshake)."""

    __slots__ = ("factory", "origin", "origins")

    def __init__(
        self,
        origins: ProxiedOrigins,
        origin: ProxiedOrigin,
        factory: ProtocolFactory,
    ) -> None:
        self.origins = origins
        self.origin = origin
        self.factory = factory

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        # The key connection_origin() looks up (see ProxiedOrigins).
        self.origins[transport if ssl_object is None else ssl_object] = self.origin
        protocol = self.factory()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


def proxied_tls_extension(info: ProxySSL | None) -> dict[str, Any] | None:
    """The ASGI ``tls`` extension for a client whose TLS the proxy terminated, from what
    PP2_TYPE_SSL carries: no certificates, and the subject by its CN alone."""
    if info is None or not info.over_tls:
        return None
    presented = info.presented_certificate
    name = info.common_name if presented else None
    return {
        "server_cert": None,
        "client_cert_chain": [],
        "client_cert_name": rfc4514_name([[("commonName", name)]]) if name else None,
        # §2.2.5: verify is 0 when the client's certificate was presented and verified.
        "client_cert_error": (
            f"certificate verification failed ({info.verify})"
            if presented and info.verify
            else None
        ),
        "tls_version": TLS_VERSIONS.get(info.version or ""),
        "cipher_suite": _cipher_suite_ids().get(info.cipher or ""),
    }


@functools.cache
def _cipher_suite_ids() -> dict[str, int]:
    # OpenSSL names the ciphers HAProxy reports; the ASGI extension wants the IANA number,
    # the low 16 bits of OpenSSL's id (as tls.py does for hasten's own TLS).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    return {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}
