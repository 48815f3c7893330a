"""Load clients written in Python: idle keep-alive connections, WebSocket echo, probes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import resource
import socket
import struct
import time

from bench.measure import LoadResult

HELLO_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_WS_MASK = b"\x37\xfa\x21\x3d"


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


def masked_text_frame(payload: bytes) -> bytes:
    """A client-to-server text frame (RFC 6455 §5.2; clients must mask, §5.3)."""
    if len(payload) >= 126:
        raise ValueError("the benchmark only sends short frames")
    masked = bytes(b ^ _WS_MASK[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + _WS_MASK + masked


def count_server_frames(buffer: bytearray) -> tuple[int, int]:
    """Complete data frames at the start of ``buffer`` and the bytes they take.

    Server frames are unmasked; control frames (a ping) are consumed but not counted.
    """
    frames = offset = 0
    size = len(buffer)
    while size - offset >= 2:
        opcode = buffer[offset] & 0x0F
        length = buffer[offset + 1] & 0x7F
        header = 2
        if length == 126:
            if size - offset < 4:
                break
            length = int.from_bytes(buffer[offset + 2 : offset + 4], "big")
            header = 4
        elif length == 127:
            if size - offset < 10:
                break
            length = int.from_bytes(buffer[offset + 2 : offset + 10], "big")
            header = 10
        if size - offset < header + length:
            break
        offset += header + length
        if opcode < 0x8:
            frames += 1
    return frames, offset


class _EchoClient(asyncio.Protocol):
    """One WebSocket connection sending batches of pipelined messages, counting echoes."""

    def __init__(self, request: bytes, batch: bytes, batch_size: int, stop_at: float) -> None:
        self.request = request
        self.batch = batch
        self.batch_size = batch_size
        self.stop_at = stop_at
        self.buffer = bytearray()
        self.upgraded = False
        self.outstanding = 0
        self.echoed = 0
        self.latencies: list[float] = []
        self.sent_at = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self._finish(ConnectionError(bytes(self.buffer[:60]).decode(errors="replace")))
                return
            del self.buffer[: end + 4]
            self.upgraded = True
            self._send_batch()
        frames, used = count_server_frames(self.buffer)
        del self.buffer[:used]
        self.outstanding -= frames
        self.echoed += frames
        if self.outstanding <= 0:
            self.latencies.append(time.perf_counter() - self.sent_at)
            if time.perf_counter() >= self.stop_at:
                self._finish(None)
            else:
                self._send_batch()

    def _send_batch(self) -> None:
        self.outstanding = self.batch_size
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.batch)

    def _finish(self, error: BaseException | None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc or ConnectionError("closed by the server"))


async def _websocket_echo(
    port: int, connections: int, batch_size: int, payload_size: int, duration: float
) -> LoadResult:
    loop = asyncio.get_running_loop()
    batch = masked_text_frame(b"m" * payload_size) * batch_size
    stop_at = time.perf_counter() + duration
    started = time.perf_counter()
    clients = []
    for _ in range(connections):
        request, _key = _ws_handshake()
        _transport, client = await loop.create_connection(
            lambda request=request: _EchoClient(request, batch, batch_size, stop_at),
            "127.0.0.1",
            port,
        )
        clients.append(client)
    await asyncio.wait_for(asyncio.gather(*(c.done for c in clients)), duration + 30)
    elapsed = time.perf_counter() - started
    echoed = sum(c.echoed for c in clients)
    latencies = sorted(x for c in clients for x in c.latencies)

    def percentile(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return LoadResult(
        rate=echoed / elapsed, p50_ms=percentile(0.50), p99_ms=percentile(0.99), requests=echoed
    )


def websocket_echo(
    port: int, connections: int, batch_size: int, payload_size: int, duration: float
) -> LoadResult:
    """Echoed messages per second; p50/p99 are per batch round trip (64 messages)."""
    try:
        import uvloop  # noqa: PLC0415 -- the client is faster on uvloop when it is there

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_websocket_echo(port, connections, batch_size, payload_size, duration))
