"""HTTP/2 frames as hasten reads and writes them: round trips against hyperframe, bytes fed
in any pieces, and the hostile frames of RFC 9113 §4-§6 (hostile-inputs P2, P9-P12, P14,
P17)."""

from __future__ import annotations

import pytest
from hyperframe import frame as hf
from hypothesis import given, settings
from hypothesis import strategies as st

from hasten.protocols.http2.frames import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    HEADERS,
    PRIORITY_FLAG,
    SETTINGS,
    ErrorCode,
    Frame,
    FrameError,
    FrameReader,
    FrameWriter,
    frame_header,
    parse_goaway,
    parse_settings,
    read_uint31,
)
from tests.protocols.h2client import parse_frames

MAX_FRAME = 16384
MAX_BLOCK = 65536

stream_ids = st.integers(min_value=1, max_value=2**31 - 1)
payloads = st.binary(max_size=200)
paddings = st.one_of(st.none(), st.integers(min_value=0, max_value=40))


def padded(frame: hf.Frame, padding: int | None) -> hf.Frame:
    if padding is not None:
        frame.flags.add("PADDED")
        frame.pad_length = padding
    return frame


@st.composite
def client_frames(draw: st.DrawFn) -> hf.Frame:
    """A valid frame of any type a client may send."""
    kind = draw(st.sampled_from(["data", "headers", "priority", "rst", "settings", "ping"]))
    kind = kind if draw(st.booleans()) else draw(st.sampled_from(["goaway", "window"]))
    stream_id = draw(stream_ids)
    frame: hf.Frame
    if kind == "data":
        frame = padded(hf.DataFrame(stream_id, draw(payloads)), draw(paddings))
        if draw(st.booleans()):
            frame.flags.add("END_STREAM")
    elif kind == "headers":
        frame = padded(hf.HeadersFrame(stream_id, draw(payloads)), draw(paddings))
        frame.flags.add("END_HEADERS")
        if draw(st.booleans()):
            frame.flags.add("PRIORITY")
            frame.depends_on = draw(st.integers(0, 2**31 - 1).filter(lambda n: n != stream_id))
            frame.stream_weight = draw(st.integers(0, 255))
            frame.exclusive = draw(st.booleans())
    elif kind == "priority":
        depends_on = draw(st.integers(0, 2**31 - 1).filter(lambda n: n != stream_id))
        frame = hf.PriorityFrame(stream_id, depends_on, draw(st.integers(0, 255)))
    elif kind == "rst":
        frame = hf.RstStreamFrame(stream_id, draw(st.integers(0, 2**32 - 1)))
    elif kind == "settings":
        frame = hf.SettingsFrame(
            0,
            settings=draw(
                st.dictionaries(
                    # hyperframe writes only the low octet of a setting id
                    st.sampled_from([1, 3, 6, 0x10, 0xFF]),
                    st.integers(0, 2**32 - 1),
                )
            ),
        )
    elif kind == "ping":
        frame = hf.PingFrame(0, draw(st.binary(min_size=8, max_size=8)))
    elif kind == "goaway":
        frame = hf.GoAwayFrame(
            0, draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**32 - 1)), draw(payloads)
        )
    else:
        frame = hf.WindowUpdateFrame(
            draw(st.integers(0, 2**31 - 1)), draw(st.integers(1, 2**31 - 1))
        )
    return frame


def read_all(data: bytes, *, pieces: list[int] | None = None) -> list[Frame]:
    """The frames in ``data`` fed in pieces cut at ``pieces``, SETTINGS values checked."""
    reader = FrameReader(MAX_FRAME, MAX_BLOCK)
    frames: list[Frame] = []
    cuts = sorted(pieces or [])
    start = 0
    for cut in [*cuts, len(data)]:
        reader.feed(data[start:cut])
        start = max(start, cut)
        while (frame := reader.next_frame()) is not None:
            if frame.type == SETTINGS:
                parse_settings(frame.payload)
            frames.append(frame)
    return frames


def assert_same(ours: Frame, theirs: hf.Frame) -> None:
    assert ours.type == theirs.type
    assert ours.stream_id == theirs.stream_id
    if isinstance(theirs, hf.DataFrame | hf.HeadersFrame):
        assert ours.payload == theirs.data
    elif isinstance(theirs, hf.SettingsFrame):
        assert dict(parse_settings(ours.payload)) == theirs.settings
    elif isinstance(theirs, hf.GoAwayFrame):
        assert parse_goaway(ours.payload) == (
            theirs.last_stream_id,
            theirs.error_code,
            theirs.additional_data,
        )
    elif isinstance(theirs, hf.WindowUpdateFrame):
        assert read_uint31(ours.payload, 0) == theirs.window_increment
    elif isinstance(theirs, hf.RstStreamFrame):
        assert int.from_bytes(ours.payload) == theirs.error_code
    elif isinstance(theirs, hf.PingFrame):
        assert ours.payload == theirs.opaque_data


@settings(max_examples=200, deadline=None)
@given(st.lists(client_frames(), max_size=8), st.lists(st.integers(0, 3000), max_size=6))
def test_frames_hyperframe_writes_are_read_alike(frames: list[hf.Frame], cuts: list[int]) -> None:
    ours = read_all(b"".join(frame.serialize() for frame in frames), pieces=cuts)
    assert len(ours) == len(frames)
    for mine, theirs in zip(ours, frames, strict=True):
        assert_same(mine, theirs)


@settings(max_examples=100, deadline=None)
@given(stream_ids, payloads, st.booleans(), st.binary(max_size=40000))
def test_frames_hasten_writes_are_read_alike_by_hyperframe(
    stream_id: int, data: bytes, end_stream: bool, block: bytes
) -> None:
    writer = FrameWriter()
    writer.headers(stream_id, block, end_stream=end_stream)
    writer.data(stream_id, data, end_stream=end_stream)
    writer.settings([(3, 100), (4, 65535)])
    writer.settings_ack()
    writer.ping_ack(b"12345678")
    writer.rst_stream(stream_id, ErrorCode.CANCEL)
    writer.window_update(0, 2**31 - 1)
    writer.goaway(stream_id, ErrorCode.ENHANCE_YOUR_CALM, b"calm")
    size = writer.size
    written = writer.take()
    assert len(written) == size
    assert writer.take() == b""
    frames = parse_frames(written)
    block_frames = frames[: len(frames) - 7]
    assert [frame.type for frame in block_frames] == [HEADERS] + [CONTINUATION] * (
        len(block_frames) - 1
    )
    assert b"".join(frame.data for frame in block_frames) == block
    assert "END_HEADERS" in block_frames[-1].flags
    assert ("END_STREAM" in block_frames[0].flags) == end_stream
    data_frame, settings_frame, ack, ping, rst, window, goaway = frames[len(block_frames) :]
    assert (data_frame.data, "END_STREAM" in data_frame.flags) == (data, end_stream)
    assert settings_frame.settings == {3: 100, 4: 65535}
    assert "ACK" in ack.flags and not ack.settings
    assert ("ACK" in ping.flags, ping.opaque_data) == (True, b"12345678")
    assert (rst.stream_id, rst.error_code) == (stream_id, ErrorCode.CANCEL)
    assert (window.stream_id, window.window_increment) == (0, 2**31 - 1)
    assert (goaway.last_stream_id, goaway.error_code) == (stream_id, ErrorCode.ENHANCE_YOUR_CALM)
    assert goaway.additional_data == b"calm"
    # And hasten reads back what it wrote.
    read_back = read_all(written)
    assert [frame.type for frame in read_back] == [HEADERS, DATA, SETTINGS, SETTINGS, 6, 3, 8, 7]
    assert read_back[0].payload == block


def test_header_block_is_joined_from_its_continuation_frames() -> None:
    first = hf.HeadersFrame(3, b"abc", flags=["END_STREAM"])
    middle = hf.ContinuationFrame(3, b"def")
    last = hf.ContinuationFrame(3, b"gh", flags=["END_HEADERS"])
    reader = FrameReader(MAX_FRAME, MAX_BLOCK)
    reader.feed(first.serialize() + middle.serialize())
    assert reader.next_frame() is None
    reader.feed(last.serialize() + hf.PingFrame(0, b"x" * 8).serialize())
    frame = reader.next_frame()
    assert frame is not None
    assert (frame.type, frame.stream_id, frame.payload) == (HEADERS, 3, b"abcdefgh")
    assert frame.flags & END_HEADERS
    assert reader.continuations == reader.uncharged_frames == 2
    assert read_all(hf.PingFrame(0, b"x" * 8).serialize())[0].payload == b"x" * 8


def test_unknown_frame_types_and_flags_are_ignored() -> None:
    unknown = frame_header(3, 0xFA, 0xFF, 1) + b"abc"
    data = frame_header(2, DATA, 0xF0, 1) + b"hi"  # flags DATA doesn't define
    reader = FrameReader(MAX_FRAME, MAX_BLOCK)
    reader.feed(unknown + data)
    frame = reader.next_frame()
    assert frame is not None
    assert (frame.type, frame.payload) == (DATA, b"hi")
    assert reader.uncharged_frames == 1  # the unknown frame, for the abuse budgets


# -- Hostile frames ---------------------------------------------------------------------------


def raw(length: int, frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return frame_header(length, frame_type, flags, stream_id) + payload


def setting(parameter: int, value: int) -> bytes:
    return parameter.to_bytes(2) + value.to_bytes(4)


CONNECTION_ERRORS = [
    # P2: a payload above SETTINGS_MAX_FRAME_SIZE
    (raw(16385, DATA, 0, 1, b"x" * 16385), ErrorCode.FRAME_SIZE_ERROR),
    # P3: HEADERS, DATA, PRIORITY, RST_STREAM, CONTINUATION on stream 0
    (raw(1, HEADERS, END_HEADERS, 0, b"\x82"), ErrorCode.PROTOCOL_ERROR),
    (raw(0, DATA, 0, 0, b""), ErrorCode.PROTOCOL_ERROR),
    (raw(5, 0x2, 0, 0, b"\x00" * 5), ErrorCode.PROTOCOL_ERROR),
    (raw(4, 0x3, 0, 0, b"\x00" * 4), ErrorCode.PROTOCOL_ERROR),
    # P9: SETTINGS values and layout
    (raw(6, SETTINGS, 0, 0, setting(2, 2)), ErrorCode.PROTOCOL_ERROR),
    (raw(6, SETTINGS, 0, 0, setting(4, 2**31)), ErrorCode.FLOW_CONTROL_ERROR),
    (raw(6, SETTINGS, 0, 0, setting(5, 100)), ErrorCode.PROTOCOL_ERROR),
    (raw(6, SETTINGS, 0, 0, setting(5, 2**24)), ErrorCode.PROTOCOL_ERROR),
    (raw(6, SETTINGS, 0, 0, setting(8, 2)), ErrorCode.PROTOCOL_ERROR),
    (raw(5, SETTINGS, 0, 0, b"\x00" * 5), ErrorCode.FRAME_SIZE_ERROR),
    (raw(6, SETTINGS, 1, 0, setting(3, 1)), ErrorCode.FRAME_SIZE_ERROR),
    (raw(0, SETTINGS, 0, 1, b""), ErrorCode.PROTOCOL_ERROR),
    # P10: PING of the wrong size or on a stream
    (raw(7, 0x6, 0, 0, b"\x00" * 7), ErrorCode.FRAME_SIZE_ERROR),
    (raw(8, 0x6, 0, 1, b"\x00" * 8), ErrorCode.PROTOCOL_ERROR),
    # P11: a zero WINDOW_UPDATE on the connection; one of the wrong size
    (raw(4, 0x8, 0, 0, b"\x00" * 4), ErrorCode.PROTOCOL_ERROR),
    (raw(3, 0x8, 0, 1, b"\x00\x00\x01"), ErrorCode.FRAME_SIZE_ERROR),
    (raw(4, 0x8, 0, 5, b"\x00" * 4), ErrorCode.PROTOCOL_ERROR),  # on a stream too, as in h2
    # P12: RST_STREAM of the wrong size
    (raw(3, 0x3, 0, 1, b"\x00" * 3), ErrorCode.FRAME_SIZE_ERROR),
    # GOAWAY too short or on a stream; PUSH_PROMISE from a client
    (raw(7, 0x7, 0, 0, b"\x00" * 7), ErrorCode.FRAME_SIZE_ERROR),
    (raw(8, 0x7, 0, 1, b"\x00" * 8), ErrorCode.PROTOCOL_ERROR),
    (raw(4, 0x5, END_HEADERS, 1, b"\x00\x00\x00\x02"), ErrorCode.PROTOCOL_ERROR),
    # Padding as long as the payload; a padded frame with no pad length
    (raw(3, DATA, 0x8, 1, b"\x03ab"), ErrorCode.PROTOCOL_ERROR),
    (raw(0, DATA, 0x8, 1, b""), ErrorCode.FRAME_SIZE_ERROR),
    (raw(6, HEADERS, 0x8 | PRIORITY_FLAG | END_HEADERS, 1, b"\x01" + b"\x00" * 5), None),
    (raw(4, HEADERS, PRIORITY_FLAG | END_HEADERS, 1, b"\x00" * 4), ErrorCode.FRAME_SIZE_ERROR),
    # P14: PRIORITY or HEADERS depending on its own stream (a stream error h2 and hasten
    # make a connection error)
    (raw(5, 0x2, 0, 5, b"\x00\x00\x00\x05\x10"), ErrorCode.PROTOCOL_ERROR),
    (raw(6, HEADERS, PRIORITY_FLAG | END_HEADERS, 5, b"\x80\x00\x00\x05\x10\x82"), None),
    (raw(4, 0x2, 0, 5, b"\x00" * 4), ErrorCode.FRAME_SIZE_ERROR),
    # P17: CONTINUATION alone, after a finished block, on another stream, or interleaved
    (raw(1, CONTINUATION, END_HEADERS, 1, b"\x82"), ErrorCode.PROTOCOL_ERROR),
    (raw(1, HEADERS, 0, 1, b"\x82") + raw(1, CONTINUATION, END_HEADERS, 3, b"\x82"), None),
    (raw(1, HEADERS, 0, 1, b"\x82") + raw(8, 0x6, 0, 0, b"\x00" * 8), None),
]


@pytest.mark.parametrize(("data", "code"), CONNECTION_ERRORS)
def test_frames_breaking_rfc_9113_are_connection_errors(
    data: bytes, code: ErrorCode | None
) -> None:
    with pytest.raises(FrameError) as caught:
        read_all(data)
    assert caught.value.code == (code or ErrorCode.PROTOCOL_ERROR)
    assert caught.value.stream_id == 0


def test_continuation_flood_is_stopped_before_the_block_completes() -> None:
    # CVE-2024-27316: CONTINUATION frames without END_HEADERS, growing the block forever.
    flood = raw(1, HEADERS, 0, 1, b"\x82") + raw(16384, CONTINUATION, 0, 1, b"a" * 16384) * 5
    with pytest.raises(FrameError) as caught:
        read_all(flood)
    assert caught.value.code == ErrorCode.ENHANCE_YOUR_CALM


def test_a_larger_advertised_frame_size_is_read() -> None:
    reader = FrameReader(2**20, MAX_BLOCK)
    reader.feed(raw(100000, DATA, 1, 1, b"x" * 100000))
    frame = reader.next_frame()
    assert frame is not None
    assert len(frame.payload) == frame.length == 100000


def test_padding_is_removed_but_counted_in_the_length() -> None:
    (frame,) = read_all(raw(6, DATA, 0x8, 1, b"\x02abc\x00\x00"))
    assert (frame.payload, frame.length) == (b"abc", 6)
