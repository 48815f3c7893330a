"""The benchmark's WebSocket frames, checked against the websockets library's parser."""

from __future__ import annotations

import zlib

import pytest
from bench.websocket_load import (
    client_frame,
    client_window_bits,
    count_frames,
    deflated,
    server_frame_size,
)
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader


def _parse(data: bytes, mask: bool) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=mask, max_size=None, extensions=None)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 32, 125, 126, 65535, 65536])
def test_client_frames_are_masked_frames_websockets_reads(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = _parse(client_frame(payload, binary=True), mask=True)
    assert frame.opcode is Opcode.BINARY and frame.fin and frame.data == payload


@pytest.mark.parametrize("size", [0, 32, 125, 126, 65535, 65536])
def test_server_frame_size_is_what_websockets_writes(size: int) -> None:
    written = Frame(Opcode.TEXT, b"x" * size).serialize(mask=False, extensions=None)
    assert server_frame_size(size) == len(written)


def test_frames_are_counted_by_their_headers_and_pings_are_not() -> None:
    frames = [Frame(Opcode.TEXT, b"a" * 200), Frame(Opcode.PING, b""), Frame(Opcode.BINARY, b"")]
    data = bytearray(b"".join(f.serialize(mask=False, extensions=None) for f in frames))
    assert count_frames(data + b"\x81") == (2, len(data))


def test_a_deflated_message_inflates_back_without_its_tail() -> None:
    payload = b'{"name": "user"}' * 60
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(deflated(payload, 15) + b"\x00\x00\xff\xff") == payload


def test_the_client_window_comes_from_the_servers_answer() -> None:
    head = b"HTTP/1.1 101 x\r\nSec-WebSocket-Extensions: permessage-deflate; "
    assert client_window_bits(head + b"client_max_window_bits=12") == 12
    assert client_window_bits(head + b"server_no_context_takeover") == 15
    assert client_window_bits(b"HTTP/1.1 101 x\r\nUpgrade: websocket") is None
