"""WebSocket load that costs the client as little as it can: the client must never be what
saturates first.

Every frame the client sends is built and masked once, before the run; a connection then
writes the same batch again each time the server's answer to the previous one is in. The
answer is counted in bytes, since a server frame carrying a known payload has a known size
(RFC 6455 §5.2); only permessage-deflate's answers, whose size depends on the server's
compressor, are counted by walking the frame headers (never the payloads). uvloop runs the
connections when it is installed.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from bench.measure import CpuClock, LoadResult

_TEXT = 0x1
_BINARY = 0x2
_FIN = 0x80
_RSV1 = 0x40  # RFC 7692 §6: set on the first frame of a compressed message
_MASK_BIT = 0x80
_MASKING_KEY = b"\x37\xfa\x21\x3d"
# RFC 7692 §7.2.1: the compressor's sync flush ends with these four bytes, left off the wire.
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


class ExtensionRefused(Exception):
    """The server did not agree to permessage-deflate: the scenario does not apply to it."""


@dataclass(frozen=True)
class WebSocketLoad:
    """What one WebSocket scenario sends: ``senders`` connections, each keeping ``batch``
    messages of ``payload`` in flight, and ``listeners`` connections that only receive (the
    server's app broadcasts every message to all connections)."""

    senders: int
    batch: int
    payload: bytes
    binary: bool = False
    deflate: bool = False
    listeners: int = 0


def _masked(payload: bytes) -> bytes:
    """``payload`` XORed with the masking key (RFC 6455 §5.3), as one big integer."""
    key = (_MASKING_KEY * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
    return masked.to_bytes(len(payload), "big")


def _length_field(length: int, mask_bit: int) -> bytes:
    """The payload length bytes of a frame header (RFC 6455 §5.2)."""
    if length < 126:
        return bytes([mask_bit | length])
    if length < 1 << 16:
        return bytes([mask_bit | 126]) + length.to_bytes(2, "big")
    return bytes([mask_bit | 127]) + length.to_bytes(8, "big")


def client_frame(payload: bytes, binary: bool = False, compressed: bool = False) -> bytes:
    """One whole message from a client: a final, masked frame (clients must mask, §5.3)."""
    first = _FIN | (_BINARY if binary else _TEXT) | (_RSV1 if compressed else 0)
    return bytes([first]) + _length_field(len(payload), _MASK_BIT) + _MASKING_KEY + _masked(payload)


def server_frame_size(payload_size: int) -> int:
    """The size of an unmasked, unfragmented server frame carrying ``payload_size`` bytes."""
    return len(_length_field(payload_size, 0)) + 1 + payload_size


def deflated(payload: bytes, window_bits: int) -> bytes:
    """``payload`` compressed as one message without context takeover (RFC 7692 §7.2.1): the
    same bytes are valid every time they are sent, whatever the server's decompressor kept."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(_DEFLATE_TAIL)
    return data[: -len(_DEFLATE_TAIL)]


def count_frames(buffer: bytearray) -> tuple[int, int]:
    """Complete data frames at the start of ``buffer`` and the bytes they take; control
    frames (a ping) are consumed but not counted."""
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


def _handshake_request(deflate: bool) -> bytes:
    key = base64.b64encode(os.urandom(16))
    offer = b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else b""
    return (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n%b\r\n" % (key, offer)
    )


def client_window_bits(response_head: bytes) -> int | None:
    """The window the server lets the client compress with (RFC 7692 §7.1.2.2), or None if
    the response agreed to no permessage-deflate."""
    for line in response_head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() != b"sec-websocket-extensions":
            continue
        parameters = [p.strip() for p in value.split(b";")]
        if parameters[0] != b"permessage-deflate":
            continue
        for parameter in parameters[1:]:
            key, _, bits = parameter.partition(b"=")
            if key.strip() == b"client_max_window_bits" and bits:
                return int(bits.strip(b' "'))
        return 15
    return None


class _Tally:
    """What all connections of a run share: whether to go on, and the batch round trips."""

    def __init__(self) -> None:
        self.running = True
        self.latencies: list[float] = []


class _Connection(asyncio.Protocol):
    """One WebSocket connection: sends its batch again whenever the answer to the last one
    is in (a listener sends nothing), and counts the server's frames."""

    def __init__(self, tally: _Tally, load: WebSocketLoad, sends: bool) -> None:
        self.tally = tally
        self.load = load
        self.sends = sends
        self.batch = b""
        # Fixed-size answers are counted in bytes; deflate's by their headers.
        self.answer_size = 0 if load.deflate else server_frame_size(len(load.payload))
        self.received_bytes = 0
        self.frames_counted = 0
        # What answers a batch, in bytes (in frames under deflate), and what is still to come.
        self.batch_answer = load.batch if load.deflate else load.batch * self.answer_size
        self.unanswered = 0
        self.buffer = bytearray()
        self.upgraded = False
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def frames(self) -> int:
        if self.answer_size:
            return self.received_bytes // self.answer_size
        return self.frames_counted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.write(_handshake_request(self.load.deflate))

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self._read_handshake(data)
            return
        if self.answer_size:
            self.received_bytes += len(data)
            self.unanswered -= len(data)
        else:
            self.buffer += data
            frames, used = count_frames(self.buffer)
            del self.buffer[:used]
            self.frames_counted += frames
            self.unanswered -= frames
        if self.sends and self.unanswered <= 0:
            now = time.perf_counter()
            self.tally.latencies.append(now - self.sent_at)
            if self.tally.running:
                self._send_batch(now)

    def _read_handshake(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        rest = bytes(self.buffer[end + 4 :])
        self.buffer.clear()
        if not head.startswith(b"HTTP/1.1 101"):
            self._fail(ConnectionError(head[:60].decode(errors="replace")))
            return
        payload = self.load.payload
        if self.load.deflate:
            window_bits = client_window_bits(head)
            if window_bits is None:
                self._fail(ExtensionRefused("no permessage-deflate"))
                return
            payload = deflated(payload, window_bits)
        frame = client_frame(payload, self.load.binary, compressed=self.load.deflate)
        self.batch = frame * self.load.batch
        self.upgraded = True
        self.opened.set_result(None)
        if self.sends:
            self._send_batch(time.perf_counter())
        if rest:
            self.data_received(rest)

    def _send_batch(self, now: float) -> None:
        self.unanswered += self.batch_answer
        self.sent_at = now
        assert self.transport is not None
        self.transport.write(self.batch)

    def _fail(self, error: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))


async def _open(port: int, tally: _Tally, load: WebSocketLoad, sends: bool) -> _Connection:
    loop = asyncio.get_running_loop()
    _transport, connection = await loop.create_connection(
        lambda: _Connection(tally, load, sends), "127.0.0.1", port
    )
    return connection


async def _run(
    port: int,
    load: WebSocketLoad,
    warmup: float,
    duration: float,
    server_rss_kb: Callable[[], int] | None,
) -> tuple[LoadResult, float | None]:
    tally = _Tally()
    connections: list[_Connection] = []
    try:
        memory_per_listener = None
        if load.listeners:
            before = server_rss_kb() if server_rss_kb else 0
            for _ in range(load.listeners):
                connections.append(await _open(port, tally, load, sends=False))
            await asyncio.gather(*(c.opened for c in connections))
            if server_rss_kb:
                memory_per_listener = (server_rss_kb() - before) * 1024 / load.listeners
        # Senders open last, so that a broadcast reaches them after every listener: a
        # sender's batch is answered once the whole broadcast has been written.
        senders = [await _open(port, tally, load, sends=True) for _ in range(load.senders)]
        connections += senders
        await asyncio.gather(*(c.opened for c in senders))
        await asyncio.sleep(warmup)
        tally.latencies.clear()
        frames_before = sum(c.frames for c in connections)
        clock = CpuClock.of_self()
        await asyncio.sleep(duration)
        cpu_share, elapsed = clock.share(), clock.elapsed()
        delivered = sum(c.frames for c in connections) - frames_before
        latencies = sorted(tally.latencies)
    finally:
        tally.running = False
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()

    def percentile(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    result = LoadResult(
        rate=delivered / elapsed,
        p50_ms=percentile(0.50),
        p99_ms=percentile(0.99),
        requests=delivered,
        client_cpu=cpu_share,
    )
    return result, memory_per_listener


def run(
    port: int,
    load: WebSocketLoad,
    warmup: float,
    duration: float,
    server_rss_kb: Callable[[], int] | None = None,
) -> tuple[LoadResult, float | None]:
    """Messages the server delivered per second over ``duration`` (after ``warmup`` on the
    same connections), and, with ``listeners``, the server's memory per idle listener in
    bytes; p50/p99 are a batch's round trip."""
    try:
        import uvloop  # noqa: PLC0415 -- the client is faster on uvloop when it is there

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_run(port, load, warmup, duration, server_rss_kb))
