"""hasten's WebSocket frames (RFC 6455 §5, RFC 7692), sans I/O, with the websockets library's
frame parser and serialiser as the oracle: frames websockets builds are read by ours, and
frames ours builds are read by websockets."""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate as LibraryDeflate
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from hasten.protocols.websocket import frames
from hasten.protocols.websocket.frames import FrameReader, ProtocolViolation
from hasten.protocols.websocket.permessage_deflate import PerMessageDeflate, negotiate
from tests.protocols.ws_support import frame


@dataclass(frozen=True)
class Message:
    text: bool
    payload: bytes
    # Where the payload is cut into fragments; a ping goes between each two.
    cuts: tuple[int, ...]


@st.composite
def messages(draw: st.DrawFn) -> Message:
    text = draw(st.booleans())
    if text:
        payload = draw(st.text(max_size=300)).encode("utf-8")
    else:
        payload = draw(st.binary(max_size=70_000 if draw(st.integers(0, 9)) == 0 else 300))
    cuts = draw(st.lists(st.integers(0, len(payload)), max_size=4))
    return Message(text, payload, tuple(sorted(cuts)))


def _library_frames(message: Message) -> list[Frame]:
    """The message as a client may send it: fragments at the cuts, a ping between each."""
    bounds = [0, *message.cuts, len(message.payload)]
    pieces = [message.payload[a:b] for a, b in itertools.pairwise(bounds)]
    result: list[Frame] = []
    for index, piece in enumerate(pieces):
        if index == 0:
            opcode = Opcode.TEXT if message.text else Opcode.BINARY
        else:
            result.append(Frame(Opcode.PING, b"%d" % index))
            opcode = Opcode.CONT
        result.append(Frame(opcode, piece, fin=index == len(pieces) - 1))
    return result


def _read_all(reader: FrameReader, data: bytes, chunk: int) -> list[tuple[int, object]]:
    events: list[tuple[int, object]] = []
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
        while (opcode := reader.next_event()) != frames.NOTHING:
            if opcode == frames.TEXT:
                events.append((opcode, reader.text))
            elif opcode == frames.CLOSE:
                events.append((opcode, (reader.close_code, reader.close_reason)))
            else:
                events.append((opcode, reader.data))
    return events


def _expected(message: Message) -> list[tuple[int, object]]:
    pings: list[tuple[int, object]] = [
        (frames.PING, b"%d" % i) for i in range(1, len(message.cuts) + 1)
    ]
    if message.text:
        return [*pings, (frames.TEXT, message.payload.decode("utf-8"))]
    return [*pings, (frames.BINARY, message.payload)]


@settings(max_examples=150, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=4), st.integers(1, 5000))
def test_frames_websockets_writes_are_read_as_its_messages(
    batch: list[Message], chunk: int
) -> None:
    data = b"".join(f.serialize(mask=True) for message in batch for f in _library_frames(message))
    reader = FrameReader(1 << 20, 4096, None)
    expected = [event for message in batch for event in _expected(message)]
    assert _read_all(reader, data, chunk) == expected


@settings(max_examples=100, deadline=None)
@given(
    st.lists(messages(), min_size=1, max_size=4),
    st.integers(1, 5000),
    st.sampled_from([9, 12, 15]),
    st.booleans(),
)
def test_compressed_frames_websockets_writes_are_read_as_its_messages(
    batch: list[Message], chunk: int, client_bits: int, no_context_takeover: bool
) -> None:
    # websockets as the client: its local side is what the server calls the client's.
    client = LibraryDeflate(False, no_context_takeover, 12, client_bits)
    data = b"".join(
        f.serialize(mask=True, extensions=[client])
        for message in batch
        for f in _library_frames(message)
    )
    deflate = PerMessageDeflate(12, client_bits, False, no_context_takeover)
    reader = FrameReader(1 << 20, 4096, deflate)
    expected = [event for message in batch for event in _expected(message)]
    assert _read_all(reader, data, chunk) == expected


def _library_parse(data: bytes, extensions: list[LibraryDeflate] | None = None) -> list[Frame]:
    stream = StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    parsed = []
    while stream.buffer:
        parser = Frame.parse(stream.read_exact, mask=False, max_size=None, extensions=extensions)
        try:
            next(parser)
        except StopIteration as done:
            parsed.append(done.value)
        else:  # pragma: no cover
            raise AssertionError("incomplete frame")
    return parsed


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=70_000)), max_size=5))
def test_frames_hasten_writes_are_read_by_websockets(batch: list[tuple[bool, bytes]]) -> None:
    data = b"".join(
        frames.data_frame(frames.BINARY if binary else frames.TEXT, payload)
        for binary, payload in batch
    )
    parsed = _library_parse(data)
    assert [(f.opcode, f.data, f.fin, f.rsv1) for f in parsed] == [
        (Opcode.BINARY if binary else Opcode.TEXT, payload, True, False)
        for binary, payload in batch
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(max_size=5000), min_size=1, max_size=6),
    st.sampled_from([9, 12, 15]),
    st.booleans(),
)
def test_compressed_frames_hasten_writes_are_read_by_websockets(
    batch: list[bytes], server_bits: int, no_context_takeover: bool
) -> None:
    deflate = PerMessageDeflate(server_bits, 15, no_context_takeover, False)
    data = b"".join(
        frames.data_frame(frames.BINARY, deflate.deflate(payload), compressed=True)
        for payload in batch
    )
    client = LibraryDeflate(no_context_takeover, False, server_bits, 15)
    assert [f.data for f in _library_parse(data, [client])] == batch


@pytest.mark.parametrize("code", [1000, 1001, 1011, 3000, 4999])
def test_close_frames_hasten_writes_are_read_by_websockets(code: int) -> None:
    data = frames.control_frame(frames.CLOSE, frames.close_payload(code, "bye ünïcode"))
    (parsed,) = _library_parse(data)
    assert Close.parse(parsed.data) == Close(code, "bye ünïcode")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_close_codes_never_on_the_wire_cannot_be_sent(code: int) -> None:
    with pytest.raises(ValueError, match="may not be sent"):
        frames.close_payload(code, "")


def test_close_reason_past_123_bytes_cannot_be_sent() -> None:
    frames.close_payload(1000, "r" * 123)
    with pytest.raises(ValueError, match="123 bytes"):
        frames.close_payload(1000, "r" * 124)


def _masked(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    return frame(opcode, payload, fin=fin, rsv=0b100 if rsv1 else 0)


def _violation(reader: FrameReader, data: bytes) -> ProtocolViolation:
    reader.feed(data)
    with pytest.raises(ProtocolViolation) as caught:
        while reader.next_event() != frames.NOTHING:
            pass
    return caught.value


def test_empty_close_frame_has_no_status_code() -> None:
    reader = FrameReader(1000, 10, None)
    assert _read_all(reader, _masked(0x8, b""), 100) == [(frames.CLOSE, (1005, ""))]


def test_bytes_after_a_close_frame_are_ignored() -> None:
    reader = FrameReader(1000, 10, None)
    data = _masked(0x8, b"\x03\xe8") + _masked(0x1, b"late") + b"\xff\xff"
    assert _read_all(reader, data, 3) == [(frames.CLOSE, (1000, ""))]


def test_rsv1_is_refused_on_a_continuation_even_with_deflate() -> None:
    reader = FrameReader(1000, 10, PerMessageDeflate())
    data = _masked(0x2, b"", fin=False) + _masked(0x0, b"x", rsv1=True)
    assert _violation(reader, data).code == 1002


def test_deflate_bomb_stops_at_the_size_limit() -> None:
    compressor = zlib.compressobj(wbits=-15)
    bomb = compressor.compress(bytes(50 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    reader = FrameReader(1 << 20, 10, PerMessageDeflate())
    violation = _violation(reader, _masked(0x2, bomb[:-4], rsv1=True))
    assert violation.code == 1009


def test_a_message_just_at_the_limit_after_decompression_is_taken() -> None:
    compressor = zlib.compressobj(wbits=-15)
    data = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    reader = FrameReader(1 << 20, 10, PerMessageDeflate())
    assert _read_all(reader, _masked(0x2, data[:-4], rsv1=True), 1 << 20) == [
        (frames.BINARY, bytes(1 << 20))
    ]


def test_compressed_data_that_is_not_deflate_closes_with_1007() -> None:
    reader = FrameReader(1000, 10, PerMessageDeflate())
    assert _violation(reader, _masked(0x2, b"\xff" * 21, rsv1=True)).code == 1007


def test_invalid_utf8_split_over_fragments_fails_at_the_fragment_that_breaks_it() -> None:
    reader = FrameReader(1000, 10, None)
    reader.feed(_masked(0x1, b"\xe2\x82", fin=False))
    assert reader.next_event() == frames.NOTHING
    assert _violation(reader, _masked(0x0, b"\x28", fin=False)).code == 1007


def test_a_huge_declared_length_fails_before_its_payload_arrives() -> None:
    reader = FrameReader(1 << 20, 10, None)
    head = bytes([0x82, 0xFF]) + (1 << 40).to_bytes(8, "big") + b"mask"
    assert _violation(reader, head).code == 1009


# -- negotiation (RFC 7692 §7.1) -----------------------------------------------------------


def test_a_plain_offer_gets_websockets_serve_windows() -> None:
    answer = negotiate(["permessage-deflate"])
    assert answer is not None
    assert answer[0] == "permessage-deflate; server_max_window_bits=12"
    assert answer[1].client_max_window_bits == 15


def test_client_max_window_bits_without_a_value_lets_the_server_choose() -> None:
    answer = negotiate(["permessage-deflate; client_max_window_bits"])
    assert answer is not None
    assert answer[0].endswith("; client_max_window_bits=12")
    assert answer[1].client_max_window_bits == 12


def test_no_context_takeover_is_agreed_both_ways() -> None:
    offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    answer = negotiate([offer])
    assert answer is not None
    text, extension = answer
    assert "server_no_context_takeover" in text and "client_no_context_takeover" in text
    assert extension.server_no_context_takeover and extension.client_no_context_takeover


def test_a_smaller_server_window_is_honoured() -> None:
    answer = negotiate(["permessage-deflate; server_max_window_bits=10"])
    assert answer is not None
    assert "server_max_window_bits=10" in answer[0]


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=07",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; unknown_parameter",
    ],
)
def test_an_offer_the_server_cannot_take_is_declined(offer: str) -> None:
    assert negotiate([offer]) is None


def test_the_first_acceptable_offer_wins() -> None:
    answer = negotiate(
        ["x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8",
         "permessage-deflate; server_max_window_bits=9"]
    )  # fmt: skip
    assert answer is not None
    assert "server_max_window_bits=9" in answer[0]
