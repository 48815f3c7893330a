"""Instructions per request on the hot path, counted by callgrind: ``python -m bench.instructions``.

Each scenario runs in process, with no sockets: a protocol object is fed request bytes
through a fake transport on an asyncio loop, and the app answers ``hello``.

- ``h1``: HTTP/1.1 keep-alive, one request at a time on one ``H1Connection``;
- ``h2``: HTTP/2, batches of 32 streams on one ``H2Connection``, from a scripted client
  that sends pre-encoded requests and counts the streams ended (its cost is the same for
  every build, and small);
- ``ws``: a WebSocket over HTTP/1.1 echoing batches of 64 pre-built masked 32-byte text
  frames (a "request" is one message in and its echo out).

Each scenario runs under ``valgrind --tool=callgrind`` twice, with two request counts; the
difference of the two instruction totals over the difference of the counts is the cost of
one request, without the start-up. Run it on the compiled build (the wheel, installed into a
venv): ``/path/to/venv/bin/python -m bench.instructions``; it says which build it measured.
Single-threaded, with hash randomisation off: repeatable to within ~0.1%, unlike a load test.

``--idle`` reports the other cost of the hot path's data layout: the Python heap each idle
HTTP/1.1 keep-alive connection holds after one request (tracemalloc over many connections;
the fake transports' share is included and the same for every build).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\n\r\n"
H2_REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8000"),
    (b"user-agent", b"bench"),
]
H2_BATCH = 32
WS_BATCH = 64
WS_UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
# One masked text frame of 32 bytes (RFC 6455 §5.2); its echo is 34 bytes.
WS_FRAME = bytes([0x81, 0x80 | 32]) + b"\x00\x00\x00\x00" + b"m" * 32
WS_ECHO_SIZE = 34
_TOTAL = re.compile(rb"^summary:\s+(\d+)", re.MULTILINE)


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def ws_echo(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "text": message["text"]})


class FakeTransport(asyncio.Transport):
    """Collects what the server writes; ``written`` is set at each write."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.output: list[bytes] = []
        self.written: asyncio.Future[None] = loop.create_future()
        self.protocol: Any = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.output.append(bytes(data))
        if not self.written.done():
            self.written.set_result(None)

    def writelines(self, parts: Any) -> None:
        self.write(b"".join(parts))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    async def next_output(self) -> bytes:
        await self.written
        self.written = self.loop.create_future()
        data = b"".join(self.output)
        self.output.clear()
        return data


def _state(loop: asyncio.AbstractEventLoop, app: Any = hello, **settings: Any) -> tuple[Any, Any]:
    """A server's shared state and its config, for ``app`` with the access log off."""
    from hasten import Config  # noqa: PLC0415 -- imported by the run, not by main()
    from hasten.protocols.negotiation import protocols_for  # noqa: PLC0415
    from hasten.state import ServerState  # noqa: PLC0415

    config = Config(app=app, access_log=False, **settings)
    return ServerState(config, app, loop, protocols_for(config)), config


async def run_h1(requests: int) -> None:
    from hasten.protocols.http1.connection import H1Connection  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    transport = FakeTransport(loop)
    conn = H1Connection(_state(loop)[0])
    conn.connection_made(transport)
    for _ in range(requests):
        conn.data_received(REQUEST)
        response = await transport.next_output()
        assert response.startswith(b"HTTP/1.1 200"), response


def h2_request_blocks() -> tuple[bytes, bytes]:
    """``H2_REQUEST``'s header block the first time, and every time after: as h2load and
    browsers send it, the first block adds the fields to the HPACK table and the later ones
    name table entries, so the scripted client encodes nothing per request."""
    import hpack  # noqa: PLC0415

    encoder = hpack.Encoder()
    return encoder.encode(H2_REQUEST, huffman=True), encoder.encode(H2_REQUEST, huffman=True)


def h2_request_frames(block: bytes, first_stream_id: int, count: int) -> bytes:
    """``count`` requests of header block ``block`` as HEADERS frames (END_STREAM |
    END_HEADERS) on consecutive client streams."""
    return b"".join(
        struct.pack(">BHBBL", 0, len(block), 0x1, 0x5, stream_id) + block
        for stream_id in range(first_stream_id, first_stream_id + 2 * count, 2)
    )


def ended_streams(data: bytes) -> int:
    """How many frames in the server's ``data`` end a stream (frames whole, as written)."""
    ended = position = 0
    while position < len(data):
        length = data[position] << 16 | data[position + 1] << 8 | data[position + 2]
        if data[position + 3] in (0x0, 0x1) and data[position + 4] & 0x1:
            ended += 1
        position += 9 + length
    return ended


async def run_h2(requests: int) -> None:
    from hasten.config import settings_view  # noqa: PLC0415
    from hasten.protocols.http2.connection import H2Connection  # noqa: PLC0415
    from hasten.protocols.http2.limits import H2Limits  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    transport = FakeTransport(loop)
    state, config = _state(loop, http="h2")
    conn = H2Connection(state, settings_view(H2Limits, config))
    conn.connection_made(transport)
    await transport.next_output()
    # The preface, empty SETTINGS, the ACK of the server's, and the connection window wide
    # open: the responses never wait on the client's windows (each fits a stream's).
    conn.data_received(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + struct.pack(">BHBBL", 0, 0, 0x4, 0, 0)
        + struct.pack(">BHBBL", 0, 0, 0x4, 0x1, 0)
        + struct.pack(">BHBBLL", 0, 4, 0x8, 0, 0, 2**31 - 1 - 65535)
    )
    first_block, block = h2_request_blocks()
    conn.data_received(h2_request_frames(first_block, 1, 1))
    await transport.next_output()
    stream_id = 3
    for _ in range(requests // H2_BATCH):
        conn.data_received(h2_request_frames(block, stream_id, H2_BATCH))
        stream_id += 2 * H2_BATCH
        ended = 0
        while ended < H2_BATCH:
            ended += ended_streams(await transport.next_output())


async def run_ws(requests: int) -> None:
    from hasten.protocols.http1.connection import H1Connection  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    transport = FakeTransport(loop)
    conn = H1Connection(_state(loop, ws_echo, ws_ping_interval=None)[0])
    conn.connection_made(transport)
    conn.data_received(WS_UPGRADE)
    response = await transport.next_output()
    assert response.startswith(b"HTTP/1.1 101"), response
    batch = WS_FRAME * WS_BATCH
    for _ in range(requests // WS_BATCH):
        # The upgrade made the WebSocket the transport's protocol.
        transport.protocol.data_received(batch)
        echoed = 0
        while echoed < WS_BATCH * WS_ECHO_SIZE:
            echoed += len(await transport.next_output())
        assert echoed == WS_BATCH * WS_ECHO_SIZE


SCENARIOS = {"h1": run_h1, "h2": run_h2, "ws": run_ws}
IDLE_CONNECTIONS = 2000


async def idle_bytes_per_connection() -> float:
    """Python heap held per idle HTTP/1.1 keep-alive connection after one request."""
    import tracemalloc  # noqa: PLC0415

    from hasten.protocols.http1.connection import H1Connection  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    state = _state(loop)[0]
    await run_h1(100)  # caches and lazily made objects, filled before the measurement
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = []
    for _ in range(IDLE_CONNECTIONS):
        transport = FakeTransport(loop)
        conn = H1Connection(state)
        conn.connection_made(transport)
        conn.data_received(REQUEST)
        await transport.next_output()
        held.append(conn)
    await asyncio.sleep(0)  # the last turn's end
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(held)


def build() -> str:
    """Which build of hasten is imported: ``compiled`` (mypyc) or ``pure``."""
    from hasten.protocols.http1 import connection as http1  # noqa: PLC0415

    return "compiled" if not http1.__file__.endswith(".py") else "pure"


def count(scenario: str, requests: int) -> int:
    """Instructions callgrind counts for a whole run of ``requests`` requests."""
    with tempfile.TemporaryDirectory(prefix="hasten-callgrind-") as scratch:
        out = Path(scratch, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.instructions",
                "--run",
                scenario,
                "--requests",
                str(requests),
            ],
            check=True,
            # str hashes, and so dict and set layouts, the same from run to run.
            env={**os.environ, "PYTHONHASHSEED": "0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        match = _TOTAL.search(out.read_bytes())
        assert match is not None, "no summary line in callgrind's output"
        return int(match[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--short", type=int, default=640, help="requests in the short run")
    parser.add_argument("--long", type=int, default=3200, help="requests in the long run")
    parser.add_argument(
        "--idle", action="store_true", help="only the heap per idle keep-alive connection"
    )
    args = parser.parse_args()
    if args.run:
        asyncio.run(SCENARIOS[args.run](args.requests))
        return
    print(f"build: {build()} ({sys.executable})")
    if args.idle:
        per_connection = asyncio.run(idle_bytes_per_connection())
        print(f"h1 idle: {per_connection:,.0f} bytes of Python heap per keep-alive connection")
        return
    for scenario in args.scenario or sorted(SCENARIOS):
        short = count(scenario, args.short)
        long = count(scenario, args.long)
        per_request = (long - short) / (args.long - args.short)
        print(f"{scenario}: {per_request:,.0f} instructions per request")


if __name__ == "__main__":
    main()
