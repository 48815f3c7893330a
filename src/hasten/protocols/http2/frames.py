"""HTTP/2 frames (RFC 9113 §4, §6), sans I/O: a server's reader and writer.

``FrameReader`` takes the bytes a client sends and hands out whole frames, their payloads
checked against each frame type's layout: padding removed, a header block and its
CONTINUATION frames joined into one HEADERS frame, unknown frame types dropped (§5.5).
A frame that breaks a rule raises :class:`FrameError`, which carries its answer: the error
code, and here always the connection's (a frame's layout is the connection's business;
RFC 9113 §5.4.1 lets the few stream errors among them fail the connection, as h2 does).
What a frame means for the connection and its streams is the state machine's business.

``FrameWriter`` serialises the frames a server sends, gathering a loop turn's frames into
one ``bytes`` for one write.
"""

from __future__ import annotations

from enum import IntEnum
from struct import Struct
from typing import Final

FRAME_HEADER_SIZE: Final = 9
# RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE's initial value and bounds.
DEFAULT_MAX_FRAME_SIZE: Final = 16384
LARGEST_MAX_FRAME_SIZE: Final = 2**24 - 1
# RFC 9113 §6.9.1: the largest flow-control window.
MAX_WINDOW: Final = 2**31 - 1
_STREAM_ID_MASK: Final = 0x7FFFFFFF

# Frame types (§6).
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# Flags (§6).
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20

# SETTINGS parameters (§6.5.2; RFC 8441 §3).
HEADER_TABLE_SIZE: Final = 0x1
ENABLE_PUSH: Final = 0x2
MAX_CONCURRENT_STREAMS: Final = 0x3
INITIAL_WINDOW_SIZE: Final = 0x4
MAX_FRAME_SIZE: Final = 0x5
MAX_HEADER_LIST_SIZE: Final = 0x6
ENABLE_CONNECT_PROTOCOL: Final = 0x8


class ErrorCode(IntEnum):
    """RFC 9113 §7."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class FrameError(Exception):
    """A frame that breaks RFC 9113: a connection error (``stream_id`` 0, answered with
    GOAWAY) or a stream error (answered with RST_STREAM on ``stream_id``)."""

    def __init__(self, code: ErrorCode, message: str, stream_id: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.stream_id = stream_id


class Frame:
    """One frame as read: ``payload`` without padding (and, for HEADERS, without the
    priority fields); a HEADERS frame holds its whole header block.

    ``length`` is the payload's length as sent, padding included (what flow control
    counts).
    """

    __slots__ = ("flags", "length", "payload", "stream_id", "type")

    def __init__(self, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        self.type = frame_type
        self.flags = flags
        self.stream_id = stream_id
        self.payload = payload
        self.length = len(payload)

    def __repr__(self) -> str:
        return f"Frame({self.type}, {self.flags:#x}, {self.stream_id}, {self.payload!r})"


class FrameReader:
    """Frames out of a client's bytes, fed in as they arrive.

    ``max_frame_size`` is the SETTINGS_MAX_FRAME_SIZE this server advertised;
    ``max_header_block_size`` caps a header block while its CONTINUATION frames arrive,
    before it is decoded (RFC 9113 §10.5.1; CONTINUATION flood, CVE-2024-27316).
    """

    __slots__ = (
        "block_frame",
        "block_parts",
        "block_size",
        "buffer",
        "continuations",
        "max_frame_size",
        "max_header_block_size",
        "position",
        "uncharged_frames",
    )

    def __init__(self, max_frame_size: int, max_header_block_size: int) -> None:
        self.buffer = b""
        self.position = 0
        self.max_frame_size = max_frame_size
        self.max_header_block_size = max_header_block_size
        # The HEADERS frame whose block is still arriving, and its parts so far.
        self.block_frame: Frame | None = None
        self.block_parts: list[bytes] = []
        self.block_size = 0
        # CONTINUATION frames read for the last complete header block.
        self.continuations = 0
        # Frames read that no frame handed out stands for (CONTINUATION, unknown types):
        # the caller charges them to its abuse budgets and resets the count.
        self.uncharged_frames = 0

    def feed(self, data: bytes) -> None:
        if self.position == len(self.buffer):
            self.buffer = data
        else:
            self.buffer = self.buffer[self.position :] + data
        self.position = 0

    def next_frame(self) -> Frame | None:
        """The next whole frame, or ``None`` until more bytes arrive."""
        while True:
            buffer = self.buffer
            start = self.position
            if len(buffer) - start < FRAME_HEADER_SIZE:
                return None
            length = buffer[start] << 16 | buffer[start + 1] << 8 | buffer[start + 2]
            if length > self.max_frame_size:
                # §4.2: too large to be anything but a connection error here.
                raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "a frame above the maximum size")
            end = start + FRAME_HEADER_SIZE + length
            if len(buffer) < end:
                return None
            frame_type = buffer[start + 3]
            flags = buffer[start + 4]
            stream_id = (
                buffer[start + 5] << 24
                | buffer[start + 6] << 16
                | buffer[start + 7] << 8
                | buffer[start + 8]
            ) & _STREAM_ID_MASK
            self.position = end
            payload = buffer[start + FRAME_HEADER_SIZE : end]
            if self.block_frame is not None:
                frame = self._continue_block(frame_type, flags, stream_id, payload)
            else:
                frame = _checked_frame(frame_type, flags, stream_id, payload)
                if frame is None:
                    self.uncharged_frames += 1
                elif frame.type == HEADERS:
                    frame = self._start_block(frame)
            if frame is not None:
                return frame

    def _start_block(self, frame: Frame) -> Frame | None:
        self.continuations = 0
        if frame.flags & END_HEADERS:
            return frame
        self._check_block_size(len(frame.payload))
        self.block_frame = frame
        self.block_parts = [frame.payload]
        self.block_size = len(frame.payload)
        return None

    def _continue_block(
        self, frame_type: int, flags: int, stream_id: int, payload: bytes
    ) -> Frame | None:
        frame = self.block_frame
        assert frame is not None
        # §6.10: a header block's frames follow each other with nothing in between.
        if frame_type != CONTINUATION or stream_id != frame.stream_id:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "a header block interrupted")
        self.continuations += 1
        self.uncharged_frames += 1
        self.block_size += len(payload)
        self._check_block_size(self.block_size)
        self.block_parts.append(payload)
        if not flags & END_HEADERS:
            return None
        frame.payload = b"".join(self.block_parts)
        frame.flags |= END_HEADERS
        self.block_frame = None
        self.block_parts = []
        return frame

    def _check_block_size(self, size: int) -> None:
        if size > self.max_header_block_size:
            raise FrameError(ErrorCode.ENHANCE_YOUR_CALM, "a header block above the limit")


def _checked_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> Frame | None:
    """The frame, its payload checked against its type's layout (§6); ``None`` for a frame
    a server ignores (an unknown type, §5.5)."""
    length = len(payload)
    if frame_type == DATA:
        _require_stream(stream_id, "DATA")
        if flags & PADDED:
            payload = _unpadded(payload, 0)
    elif frame_type == HEADERS:
        _require_stream(stream_id, "HEADERS")
        priority_size = 5 if flags & PRIORITY_FLAG else 0
        if flags & PADDED:
            payload = _unpadded(payload, priority_size)
        elif len(payload) < priority_size:
            raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
        if priority_size:
            _check_priority(payload, stream_id)
            payload = payload[5:]
    elif frame_type == PRIORITY:
        _require_stream(stream_id, "PRIORITY")
        # §6.3 makes it a stream error; h2 and hasten make it a connection error (§5.4.1).
        _require_length(payload, 5, "PRIORITY")
        _check_priority(payload, stream_id)
    elif frame_type == RST_STREAM:
        _require_stream(stream_id, "RST_STREAM")
        _require_length(payload, 4, "RST_STREAM")
    elif frame_type == SETTINGS:
        _require_connection(stream_id, "SETTINGS")
        if flags & ACK:
            if payload:
                raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload")
        elif len(payload) % 6:
            raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 long")
    elif frame_type == PUSH_PROMISE:
        # §8.4: only servers push.
        raise FrameError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE from a client")
    elif frame_type == PING:
        _require_connection(stream_id, "PING")
        _require_length(payload, 8, "PING")
    elif frame_type == GOAWAY:
        _require_connection(stream_id, "GOAWAY")
        if len(payload) < 8:
            raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY shorter than 8 octets")
    elif frame_type == WINDOW_UPDATE:
        _require_length(payload, 4, "WINDOW_UPDATE")
        if not read_uint31(payload, 0):
            # §6.9 makes it a stream error on a stream; h2 and hasten fail the connection
            # (§5.4.1), which also spares a reset a client could provoke (CVE-2025-8671).
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "a zero WINDOW_UPDATE")
    elif frame_type == CONTINUATION:
        # §6.10: only right after a HEADERS frame without END_HEADERS.
        raise FrameError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION outside a header block")
    else:
        return None
    frame = Frame(frame_type, flags, stream_id, payload)
    frame.length = length
    return frame


def _require_stream(stream_id: int, name: str) -> None:
    if not stream_id:
        raise FrameError(ErrorCode.PROTOCOL_ERROR, f"{name} on stream 0")


def _require_connection(stream_id: int, name: str) -> None:
    if stream_id:
        raise FrameError(ErrorCode.PROTOCOL_ERROR, f"{name} on a stream")


def _require_length(payload: bytes, length: int, name: str) -> None:
    if len(payload) != length:
        raise FrameError(ErrorCode.FRAME_SIZE_ERROR, f"{name} of the wrong size")


def _unpadded(payload: bytes, fields_size: int) -> bytes:
    """A PADDED frame's payload without the pad length and padding (§6.1, §6.2)."""
    if len(payload) < 1 + fields_size:
        raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "a padded frame too short")
    padding = payload[0]
    if padding >= len(payload) - fields_size:
        raise FrameError(ErrorCode.PROTOCOL_ERROR, "padding as long as the payload")
    return payload[1 : len(payload) - padding]


def _check_priority(payload: bytes, stream_id: int) -> None:
    # RFC 7540 §5.3.1: a stream cannot depend on itself. A stream error there; a connection
    # error here, as in h2 (RFC 9113 §5.4.1 allows it, and priorities are ignored anyway).
    if read_uint31(payload, 0) == stream_id:
        raise FrameError(ErrorCode.PROTOCOL_ERROR, "a stream depending on itself")


def read_uint31(payload: bytes, position: int) -> int:
    """The 31-bit value (its reserved top bit ignored) at ``position``."""
    return read_uint32(payload, position) & _STREAM_ID_MASK


def read_uint32(payload: bytes, position: int) -> int:
    return (
        payload[position] << 24
        | payload[position + 1] << 16
        | payload[position + 2] << 8
        | payload[position + 3]
    )


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """A SETTINGS frame's parameters in order, each value checked (§6.5.2; RFC 8441 §3);
    unknown parameters are left in for the caller to ignore (§6.5.2)."""
    settings: list[tuple[int, int]] = []
    for position in range(0, len(payload), 6):
        parameter = payload[position] << 8 | payload[position + 1]
        value = read_uint32(payload, position + 2)
        if parameter in (ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL) and value > 1:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, f"setting {parameter} above 1")
        if parameter == INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            raise FrameError(ErrorCode.FLOW_CONTROL_ERROR, "an initial window above 2^31-1")
        if parameter == MAX_FRAME_SIZE and not (
            DEFAULT_MAX_FRAME_SIZE <= value <= LARGEST_MAX_FRAME_SIZE
        ):
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "a maximum frame size out of range")
        settings.append((parameter, value))
    return settings


def parse_goaway(payload: bytes) -> tuple[int, int, bytes]:
    """A GOAWAY frame's last stream id, error code and debug data (§6.8)."""
    return read_uint31(payload, 0), read_uint32(payload, 4), payload[8:]


# -- Writing ---------------------------------------------------------------------------------

# Length (24 bits as a high octet and a low 16-bit half), type, flags, stream id.
_FRAME_HEADER: Final = Struct(">BHBBL")
_UINT32: Final = Struct(">L")
_SETTING: Final = Struct(">HL")
_SETTINGS_ACK: Final = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def frame_header(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    return _FRAME_HEADER.pack(length >> 16, length & 0xFFFF, frame_type, flags, stream_id)


class FrameWriter:
    """The frames a server sends, gathered until ``take()`` hands them out as one ``bytes``
    (one write per loop turn).

    ``max_frame_size`` is the client's SETTINGS_MAX_FRAME_SIZE: a header block is split
    into CONTINUATION frames to fit it; DATA is the caller's to size.
    """

    __slots__ = ("max_frame_size", "parts", "size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self.parts: list[bytes] = []
        self.size = 0

    def take(self) -> bytes:
        """Everything written since the last ``take()``."""
        parts = self.parts
        if not parts:
            return b""
        self.parts = []
        self.size = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _append(self, header: bytes, payload: bytes) -> None:
        self.parts.append(header)
        self.size += len(header) + len(payload)
        if payload:
            self.parts.append(payload)

    def data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self._append(
            frame_header(len(data), DATA, END_STREAM if end_stream else 0, stream_id), data
        )

    def headers(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        """A header block: HEADERS, and CONTINUATION frames if it exceeds one frame."""
        flags = END_STREAM if end_stream else 0
        limit = self.max_frame_size
        if len(block) <= limit:
            self._append(frame_header(len(block), HEADERS, flags | END_HEADERS, stream_id), block)
            return
        self._append(frame_header(limit, HEADERS, flags, stream_id), block[:limit])
        for start in range(limit, len(block), limit):
            chunk = block[start : start + limit]
            last = start + limit >= len(block)
            flags = END_HEADERS if last else 0
            self._append(frame_header(len(chunk), CONTINUATION, flags, stream_id), chunk)

    def settings(self, settings: list[tuple[int, int]]) -> None:
        payload = b"".join([_SETTING.pack(parameter, value) for parameter, value in settings])
        self._append(frame_header(len(payload), SETTINGS, 0, 0), payload)

    def settings_ack(self) -> None:
        self._append(_SETTINGS_ACK, b"")

    def ping_ack(self, opaque: bytes) -> None:
        self._append(frame_header(8, PING, ACK, 0), opaque)

    def rst_stream(self, stream_id: int, code: int) -> None:
        self._append(frame_header(4, RST_STREAM, 0, stream_id), _UINT32.pack(code))

    def window_update(self, stream_id: int, increment: int) -> None:
        self._append(frame_header(4, WINDOW_UPDATE, 0, stream_id), _UINT32.pack(increment))

    def goaway(self, last_stream_id: int, code: int, debug: bytes = b"") -> None:
        payload = _UINT32.pack(last_stream_id) + _UINT32.pack(code) + debug
        self._append(frame_header(len(payload), GOAWAY, 0, 0), payload)
