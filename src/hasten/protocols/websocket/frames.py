"""RFC 6455 §5 framing, sans I/O: a client's bytes become whole messages and control frames,
and the server's messages become frames.

:class:`FrameReader` checks every rule a server must enforce on what a client sends
(masking, reserved bits and opcodes, control frame rules, fragmentation, UTF-8 of text,
close codes, size limits) and raises :class:`ProtocolViolation`, which carries the close
code to fail the connection with. It parses only when asked, one message at a time, so
that bytes the app has no room for stay unparsed (and not decompressed). The frame
writers build what the server sends: unmasked (§5.1), each message in one frame.
"""

from __future__ import annotations

import codecs
import zlib
from typing import Final

from hasten.protocols.websocket.permessage_deflate import PerMessageDeflate

try:
    # websockets' C XOR: some 50 times faster than int.from_bytes XOR on 64 KiB.
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover -- websockets ships it compiled for every platform
    from websockets.utils import apply_mask


CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
# next_event's answer when no complete message or control frame is buffered.
NOTHING: Final = -1

_FIN: Final = 0x80
_RSV1: Final = 0x40
_RSV_ALL: Final = 0x70
_MASKED: Final = 0x80
# RFC 6455 §5.5: a control frame's payload is at most 125 bytes.
MAX_CONTROL_PAYLOAD: Final = 125
# Parsed bytes are dropped from the buffer in one go once this many have piled up.
_COMPACT_AFTER: Final = 64 * 1024

# RFC 6455 §7.4.1-§7.4.2 and the IANA registry: the codes a peer may send. 1005, 1006 and
# 1015 stand for "no code", "no close frame" and "TLS failed": never on the wire.
_SENDABLE_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)
NORMAL_CLOSURE: Final = 1000
GOING_AWAY: Final = 1001
PROTOCOL_ERROR: Final = 1002
NO_STATUS_RECEIVED: Final = 1005
ABNORMAL_CLOSURE: Final = 1006
INVALID_DATA: Final = 1007
MESSAGE_TOO_BIG: Final = 1009
INTERNAL_ERROR: Final = 1011


class ProtocolViolation(Exception):
    """The peer broke RFC 6455 (or RFC 7692): fail the connection with ``code`` (§7.1.7)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def valid_close_code(code: int) -> bool:
    """Whether a close frame may carry ``code`` (RFC 6455 §7.4): a registered one, or one
    reserved for libraries, frameworks and applications (3000-4999)."""
    return code in _SENDABLE_CLOSE_CODES or 3000 <= code < 5000


class FrameReader:
    """A client's frames, read as whole messages and control frames.

    ``feed`` the bytes as they come; ``next_event`` returns what the next complete frame
    finished (``TEXT`` or ``BINARY``: a whole message, in ``text`` or ``data``; ``PING`` or
    ``PONG`` with ``data``; ``CLOSE`` with ``close_code`` and ``close_reason``), or
    ``NOTHING`` until more bytes come. After a close frame, or a violation, the rest is
    ignored.
    """

    __slots__ = (
        "buffer",
        "close_code",
        "close_reason",
        "compressed",
        "data",
        "decoder",
        "deflate",
        "done",
        "inflated_size",
        "max_fragments",
        "max_size",
        "message_opcode",
        "message_size",
        "parts",
        "start",
        "text",
        "text_parts",
    )

    def __init__(
        self, max_size: int, max_fragments: int, deflate: PerMessageDeflate | None
    ) -> None:
        self.max_size = max_size
        self.max_fragments = max_fragments
        self.deflate = deflate
        self.buffer = bytearray()
        # Where the unparsed bytes begin in ``buffer``.
        self.start = 0
        self.done = False
        # The message being reassembled: its opcode (CONTINUATION when none is), whether
        # it is compressed, its payload bytes so far (as sent, and inflated), and its parts.
        self.message_opcode = CONTINUATION
        self.compressed = False
        self.message_size = 0
        self.inflated_size = 0
        self.parts: list[bytes] = []
        self.text_parts: list[str] = []
        # The incremental UTF-8 decoder of a fragmented text message: invalid UTF-8 fails
        # at the fragment that holds it (RFC 6455 §8.1), not at the end of the message.
        self.decoder: codecs.IncrementalDecoder | None = None
        self.text = ""
        self.data = b""
        self.close_code = NO_STATUS_RECEIVED
        self.close_reason = ""

    @property
    def buffered(self) -> int:
        """Bytes fed and not parsed yet."""
        return len(self.buffer) - self.start

    def feed(self, data: bytes) -> None:
        if not self.done:
            self.buffer += data

    def next_event(self) -> int:
        """The next message or control frame (its opcode), or ``NOTHING``; raises
        :class:`ProtocolViolation` on the first rule the peer breaks."""
        while not self.done:
            opcode = self._next_frame()
            if opcode != CONTINUATION:
                return opcode
        return NOTHING

    def _fail(self, code: int, reason: str) -> ProtocolViolation:
        self._stop()
        return ProtocolViolation(code, reason)

    def _stop(self) -> None:
        self.done = True
        self.buffer = bytearray()
        self.start = 0
        self.parts = []
        self.text_parts = []

    def _next_frame(self) -> int:
        """Parse one frame: the opcode of what it completed, CONTINUATION if it completed
        nothing, NOTHING if it is not all here yet."""
        buffer = self.buffer
        start = self.start
        available = len(buffer) - start
        if available < 2:
            return NOTHING
        first = buffer[start]
        second = buffer[start + 1]
        fin = (first & _FIN) != 0
        opcode = first & 0x0F
        length = second & 0x7F
        header = 6
        if length == 126:
            header = 8
            if available < 4:
                return NOTHING
            length = (buffer[start + 2] << 8) | buffer[start + 3]
        elif length == 127:
            header = 14
            if available < 10:
                return NOTHING
            length = int.from_bytes(buffer[start + 2 : start + 10], "big")
            if length >> 63:
                # RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
                raise self._fail(PROTOCOL_ERROR, "payload length with the high bit set")
        # Every check is made on the header, before waiting for the payload: a frame
        # declaring a huge length is refused at once.
        self._check_header(first, second, opcode, fin, length)
        end = start + header + length
        if len(buffer) < end:
            return NOTHING
        payload = apply_mask(buffer[end - length : end], buffer[end - length - 4 : end - length])
        if end == len(buffer):
            buffer.clear()
            self.start = 0
        elif end > _COMPACT_AFTER:
            del buffer[:end]
            self.start = 0
        else:
            self.start = end
        if opcode >= CLOSE:
            return self._control(opcode, payload)
        return self._data(opcode, fin, (first & _RSV1) != 0, payload)

    def _check_header(self, first: int, second: int, opcode: int, fin: bool, length: int) -> None:
        if not second & _MASKED:
            # RFC 6455 §5.1: a server must fail a connection whose client does not mask.
            raise self._fail(PROTOCOL_ERROR, "unmasked frame")
        reserved = first & _RSV_ALL
        if reserved and not (
            # RFC 7692 §6: RSV1 marks the first frame of a compressed data message.
            reserved == _RSV1 and self.deflate is not None and (opcode in (TEXT, BINARY))
        ):
            # RFC 6455 §5.2: reserved bits no extension negotiated must be 0.
            raise self._fail(PROTOCOL_ERROR, "reserved bits set")
        if opcode >= CLOSE:
            if opcode > PONG:
                raise self._fail(PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
            # RFC 6455 §5.5: control frames are short and never fragmented.
            if length > MAX_CONTROL_PAYLOAD:
                raise self._fail(PROTOCOL_ERROR, "control frame over 125 bytes")
            if not fin:
                raise self._fail(PROTOCOL_ERROR, "fragmented control frame")
            return
        if opcode == CONTINUATION:
            if self.message_opcode == CONTINUATION:
                # RFC 6455 §5.4: a continuation needs a message to continue.
                raise self._fail(PROTOCOL_ERROR, "continuation frame without a message")
        elif opcode in (TEXT, BINARY):
            if self.message_opcode != CONTINUATION:
                # RFC 6455 §5.4: fragments of different messages never interleave.
                raise self._fail(PROTOCOL_ERROR, "new message inside a fragmented one")
        else:
            raise self._fail(PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
        if length > self.max_size - self.message_size:
            # RFC 6455 §10.4: the server's size limit; §7.4.1's 1009.
            raise self._fail(MESSAGE_TOO_BIG, f"message over {self.max_size} bytes")

    def _control(self, opcode: int, payload: bytes) -> int:
        if opcode == CLOSE:
            self._read_close(payload)
            # RFC 6455 §5.5.1: nothing the peer sends after its close frame counts.
            self._stop()
        else:
            self.data = payload
        return opcode

    def _read_close(self, payload: bytes) -> None:
        """A close frame's code and reason (RFC 6455 §5.5.1, §7.4)."""
        if not payload:
            self.close_code = NO_STATUS_RECEIVED
            self.close_reason = ""
            return
        if len(payload) == 1:
            raise self._fail(PROTOCOL_ERROR, "close frame with a one-byte payload")
        code = (payload[0] << 8) | payload[1]
        if not valid_close_code(code):
            raise self._fail(PROTOCOL_ERROR, f"invalid close code {code}")
        try:
            self.close_reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(INVALID_DATA, "close reason is not UTF-8") from None
        self.close_code = code

    def _data(self, opcode: int, fin: bool, compressed: bool, payload: bytes) -> int:
        if opcode != CONTINUATION:
            if fin and not compressed:
                # The common case, a message in one frame, needs no reassembly.
                return self._whole(opcode, payload)
            self.message_opcode = opcode
            self.compressed = compressed
            if opcode == TEXT:
                self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.message_size += len(payload)
        if self.compressed:
            deflate = self.deflate
            assert deflate is not None
            try:
                payload = deflate.inflate(payload, fin, self.max_size - self.inflated_size)
            except ValueError as exc:
                raise self._fail(MESSAGE_TOO_BIG, str(exc)) from None
            except zlib.error:
                raise self._fail(INVALID_DATA, "invalid compressed data") from None
            self.inflated_size += len(payload)
        decoder = self.decoder
        if decoder is None:
            self.parts.append(payload)
        else:
            try:
                self.text_parts.append(decoder.decode(payload, fin))
            except UnicodeDecodeError:
                # RFC 6455 §8.1: invalid UTF-8 fails the connection with 1007.
                raise self._fail(INVALID_DATA, "invalid UTF-8 in a text message") from None
        if not fin:
            if len(self.parts) + len(self.text_parts) >= self.max_fragments:
                # RFC 6455 §5.4 puts no limit on fragments, but each is kept until the
                # message ends, and empty ones add nothing to the size: past the limit the
                # message is "too big to process" (§7.4.1's 1009).
                raise self._fail(MESSAGE_TOO_BIG, "too many fragments")
            return CONTINUATION
        message_opcode = self.message_opcode
        if decoder is None:
            self.data = b"".join(self.parts)
            self.parts = []
        else:
            self.text = "".join(self.text_parts)
            self.text_parts = []
            self.decoder = None
        self.message_opcode = CONTINUATION
        self.message_size = 0
        self.inflated_size = 0
        self.compressed = False
        return message_opcode

    def _whole(self, opcode: int, payload: bytes) -> int:
        if opcode == TEXT:
            try:
                self.text = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise self._fail(INVALID_DATA, "invalid UTF-8 in a text message") from None
        else:
            self.data = payload
        return opcode


def _header(first: int, length: int) -> bytes:
    """A server frame's header (RFC 6455 §5.2): unmasked, so no masking key."""
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126, length >> 8, length & 0xFF))
    return bytes((first, 127)) + length.to_bytes(8, "big")


def data_frame(opcode: int, payload: bytes, compressed: bool = False) -> bytes:
    """A whole message in one final frame; ``compressed`` sets RSV1 (RFC 7692 §6)."""
    first = _FIN | opcode | (_RSV1 if compressed else 0)
    return _header(first, len(payload)) + payload


def control_frame(opcode: int, payload: bytes) -> bytes:
    """A ping, pong or close frame."""
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError("a control frame carries at most 125 bytes (RFC 6455 §5.5)")
    return _header(_FIN | opcode, len(payload)) + payload


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload; raises ValueError for a code or reason that may not be sent."""
    if not valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent (RFC 6455 §7.4)")
    data = code.to_bytes(2, "big") + reason.encode("utf-8")
    if len(data) > MAX_CONTROL_PAYLOAD:
        raise ValueError("a close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5)")
    return data
