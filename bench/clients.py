"""Load clients written in Python: idle keep-alive connections, probes (the WebSocket load
is ``websocket_load``)."""

from __future__ import annotations

import base64
import contextlib
import os
import resource
import socket
import ssl

HELLO_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def raise_open_file_limit(wanted: int) -> None:
    """Lift RLIMIT_NOFILE for this process (and the servers and wrk it starts)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def read_response(sock: socket.socket) -> bytes:
    """Read one HTTP/1.1 response that has a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response body")
        body += chunk
    return head


def open_idle_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` keep-alive connections, each with one request answered and left idle."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(HELLO_REQUEST)
            sockets.append(sock)
        for sock in sockets:
            head = read_response(sock)
            if not head.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(f"unexpected answer {head[:40]!r}")
    except BaseException:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


def probe_http2(port: int) -> bool:
    """Whether the server speaks HTTP/2 with prior knowledge (RFC 9113 §3.3)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(_H2_PREFACE + _H2_EMPTY_SETTINGS)
            answer = sock.recv(9)
    except OSError:
        return False
    # The server's connection preface is a SETTINGS frame: type 0x4 in the 4th byte.
    return len(answer) >= 4 and answer[3] == 0x04


def probe_http2_over_tls(port: int) -> bool:
    """Whether the server picks h2 when a TLS client offers h2 and http/1.1 by ALPN
    (RFC 9113 §3.2); the certificate is not verified, as h2load does not verify it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=3) as sock,
            context.wrap_socket(sock) as tls,
        ):
            return tls.selected_alpn_protocol() == "h2"
    except OSError:
        return False


def _ws_handshake(path: str = "/") -> tuple[bytes, bytes]:
    key = base64.b64encode(os.urandom(16))
    request = (
        b"GET %b HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), key)
    )
    return request, key


def probe_websocket(port: int) -> bool:
    """Whether an upgrade to WebSocket gets ``101 Switching Protocols``."""
    request, _ = _ws_handshake()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 101")
