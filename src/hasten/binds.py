"""Listening sockets: parse an address, bind it, describe it.

An address is a TCP host and port, a Unix socket path with its file mode, or a socket some
parent process bound already and passed down by file descriptor. The server, the supervisors
and the metrics endpoint bind and name their sockets through this module only, and always a
list of addresses, so serving on several at once needs no new shape.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass

LOCALHOST = "127.0.0.1"
DEFAULT_UDS_MODE = 0o666
ADDRESS_FORMS = "HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N"


@dataclass(frozen=True)
class TCPAddress:
    """A host (name, IPv4 or IPv6 address, without brackets) and a port; port 0 picks one."""

    host: str
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET


@dataclass(frozen=True)
class UnixAddress:
    """A Unix domain socket file and the permission bits it gets."""

    path: str
    mode: int = DEFAULT_UDS_MODE


@dataclass(frozen=True)
class InheritedSocket:
    """A socket already bound by a parent process (systemd, a process manager)."""

    fd: int


Address = TCPAddress | UnixAddress | InheritedSocket


@dataclass(frozen=True)
class ListenAddress:
    """Where to listen, and whether its connections stay plaintext when the server has a
    TLS certificate (``--insecure-bind``: http on port 80 beside https on 443)."""

    address: Address
    insecure: bool = False


@dataclass(frozen=True)
class ListeningSocket:
    """A listening socket and whether it serves plaintext when the server has TLS."""

    sock: socket.socket
    insecure: bool = False


def parse_host_port(text: str, *, default_host: str = LOCALHOST) -> TCPAddress:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (on ``default_host``), or ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("use HOST:PORT")
    return TCPAddress(host.strip("[]") or default_host, int(port))


def parse_address(
    text: str, *, default_host: str = LOCALHOST, uds_mode: int = DEFAULT_UDS_MODE
) -> Address:
    """One address written as ``HOST:PORT``, ``[IPv6]:PORT``, ``unix:PATH`` or ``fd://N``."""
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path:
            raise ValueError(f"use {ADDRESS_FORMS}")
        return UnixAddress(path, uds_mode)
    if text.startswith("fd://"):
        digits = text.removeprefix("fd://")
        if not digits.isdigit():
            raise ValueError(f"use {ADDRESS_FORMS}")
        return InheritedSocket(int(digits))
    try:
        return parse_host_port(text, default_host=default_host)
    except ValueError:
        raise ValueError(f"use {ADDRESS_FORMS}") from None


def same_listener(first: Address, second: Address) -> bool:
    """Whether two addresses would be the same listening socket; two port-0 TCP addresses
    never are (each picks its own port)."""
    if isinstance(first, TCPAddress) and isinstance(second, TCPAddress):
        return first.port != 0 and first == second
    if isinstance(first, UnixAddress) and isinstance(second, UnixAddress):
        return os.path.abspath(first.path) == os.path.abspath(second.path)
    return first == second


def parse_mode(text: str) -> int | None:
    """Octal permission bits (``"660"``, ``"0660"`` or ``"0o660"``), or None if not that."""
    digits = text.strip().removeprefix("0o")
    if not digits or any(char not in "01234567" for char in digits):
        return None
    bits = int(digits, 8)
    return bits if bits <= 0o777 else None


def bind(address: Address, *, backlog: int, reuse_port: bool = False) -> socket.socket:
    """A listening, non-blocking socket at ``address``; ``reuse_port`` applies to TCP only."""
    if isinstance(address, InheritedSocket):
        sock = socket.socket(fileno=address.fd)
    elif isinstance(address, UnixAddress):
        sock = _bind_unix(address)
    else:
        sock = _bound_tcp_socket(address, reuse_port=reuse_port)
    try:
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        if not isinstance(address, InheritedSocket):  # an inherited one is its owner's to close
            sock.close()
        raise
    return sock


def bind_all(
    addresses: Sequence[Address], *, backlog: int, reuse_port: bool = False
) -> list[socket.socket]:
    """Every address bound, or none: when one fails, those already bound are closed."""
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            sockets.append(bind(address, backlog=backlog, reuse_port=reuse_port))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_listening(
    addresses: Sequence[ListenAddress], *, backlog: int, reuse_port: bool = False
) -> list[ListeningSocket]:
    """``bind_all`` for listen addresses: each socket keeps whether it is insecure."""
    sockets = bind_all([item.address for item in addresses], backlog=backlog, reuse_port=reuse_port)
    return [
        ListeningSocket(sock, item.insecure) for sock, item in zip(sockets, addresses, strict=True)
    ]


def reserve_port(address: TCPAddress) -> socket.socket:
    """A bound, NOT listening SO_REUSEPORT socket: it holds the port (and resolves port 0)
    while each worker listens on its own socket bound to the same one."""
    return _bound_tcp_socket(address, reuse_port=True)


def _bound_tcp_socket(address: TCPAddress, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            # Each worker listens on its own socket; the kernel spreads connections.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if address.family == socket.AF_INET6:
            # "::" then takes IPv4 clients too, whatever the system default.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((address.host, address.port))
    except OSError:
        sock.close()
        raise
    return sock


def _bind_unix(address: UnixAddress) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(address.path).st_mode):
            os.unlink(address.path)  # a stale socket from an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address.path)
        # Before listen(): until then nobody can connect, whatever the mode was.
        os.chmod(address.path, address.mode)
    except OSError:
        sock.close()
        raise
    return sock


def describe(sock: socket.socket, *, scheme: str = "http") -> str:
    """Where a listening socket serves, as the log shows it: ``http://[::1]:8000``,
    ``unix socket /run/app.sock``, ``unix socket /run/app.sock (https)``."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        # A path has no scheme to show; TLS on a Unix socket is rare enough to be said.
        over_tls = " (https)" if scheme == "https" else ""
        return f"unix socket {address or '(unnamed)'}{over_tls}"
    host, port = address[0], address[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class UnixSocketFile:
    """A socket file a server created, known by its inode: at exit the server removes the
    path only while it is still that file, not one another instance has bound since."""

    path: str
    device: int
    inode: int

    @classmethod
    def at(cls, path: str) -> UnixSocketFile:
        info = os.lstat(path)
        return cls(path, info.st_dev, info.st_ino)

    def remove_if_unchanged(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (info.st_dev, info.st_ino) == (self.device, self.inode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
