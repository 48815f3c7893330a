"""The server side of one HTTP/2 connection (RFC 9113) as a state machine, sans I/O.

``H2Machine`` is fed the client's bytes and returns events (a request, body data, a reset,
an opened window...); the server's HEADERS, DATA and resets go in as calls; the frames to
send accumulate until ``data_to_send()``. It keeps the connection's rules: the preface and
SETTINGS exchange, stream states and ids (§5.1), flow control both ways (§5.2, §6.9), header
blocks through HPACK, and the abuse budgets that need nothing but the frames and a clock
(§10.5). Checking a request's fields is ``fields.py``'s; running apps is the caller's.

A connection error raises :class:`FrameError` out of ``receive_data`` with the GOAWAY
already queued; stream errors are answered with RST_STREAM here and reported as events.
"""

from __future__ import annotations

from typing import Final

from hasten.protocols.http2.frames import (
    ACK,
    DATA,
    ENABLE_CONNECT_PROTOCOL,
    ENABLE_PUSH,
    END_STREAM,
    GOAWAY,
    HEADER_TABLE_SIZE,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    MAX_WINDOW,
    PING,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    ErrorCode,
    Frame,
    FrameError,
    FrameReader,
    FrameWriter,
    parse_goaway,
    parse_settings,
    read_uint31,
    read_uint32,
)
from hasten.protocols.http2.header_compression import (
    DEFAULT_TABLE_SIZE,
    HeaderCompressionError,
    HeaderDecoder,
    HeaderEncoder,
    HeaderListTooLarge,
)
from hasten.protocols.http2.limits import H2Limits, RateBudget

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# RFC 9113 §6.9.2: every window starts at 65,535 until SETTINGS say otherwise.
DEFAULT_WINDOW: Final = 65535
# How many closed streams are remembered at least (twice as many at most), beyond twice the
# concurrency limit, to tell a late frame on a reset stream (answered with RST_STREAM) from
# one on a stream that ended (a connection error): late frames are at most a round trip
# late, and each remembered stream costs its connection some 60 bytes.
_CLOSED_STREAMS_KEPT: Final = 256
# Response fields whose values rarely repeat: not worth a dynamic table entry each.
_UNINDEXED_RESPONSE_FIELDS: Final = frozenset({b"content-length", b"etag", b"set-cookie"})
# Two control frames (a stream's and the connection's WINDOW_UPDATE) per KiB of DATA sent.
_BUDGET_EARNED_PER_BYTE: Final = 2 / 1024
_RESETS_A_CLIENT_CAN_PROVOKE: Final = frozenset(
    {ErrorCode.CANCEL, ErrorCode.REFUSED_STREAM, ErrorCode.PROTOCOL_ERROR}
)

# What an event reports.
REQUEST: Final = 1  # headers, end_stream
DATA_RECEIVED: Final = 2  # data, flow_controlled_length, end_stream
TRAILERS: Final = 3  # headers (the stream's end)
STREAM_RESET: Final = 4  # error_code: the client reset the stream
WINDOW_OPENED: Final = 5  # stream_id 0 for the connection's window
SETTINGS_CHANGED: Final = 6  # end_stream: whether the initial window changed
GOAWAY_RECEIVED: Final = 7  # error_code, stream_id: the last stream the client processes
STREAM_REFUSED: Final = 8  # error_code: the server reset the stream (a stream error)

# How a stream was closed.
_CLOSED_BY_RESET: Final = 1
_CLOSED_BY_END: Final = 2


class H2Event:
    """Something the client's frames did; which fields matter depends on ``kind``."""

    __slots__ = (
        "data",
        "end_stream",
        "error_code",
        "flow_controlled_length",
        "headers",
        "kind",
        "stream_id",
    )

    def __init__(self, kind: int, stream_id: int) -> None:
        self.kind = kind
        self.stream_id = stream_id
        self.headers: list[tuple[bytes, bytes]] = []
        self.data = b""
        self.flow_controlled_length = 0
        self.end_stream = False
        self.error_code = 0

    def __repr__(self) -> str:
        return (
            f"H2Event({self.kind}, {self.stream_id}, headers={self.headers!r}, "
            f"data={self.data!r}, end_stream={self.end_stream}, error_code={self.error_code})"
        )


class StreamState:
    """One open stream: which sides have ended it, and its windows (§5.1, §5.2)."""

    __slots__ = (
        "expected_length",
        "local_closed",
        "receive_window",
        "received_length",
        "remote_closed",
        "send_window",
        "stream_id",
        "unacknowledged",
    )

    def __init__(self, stream_id: int, send_window: int, receive_window: int) -> None:
        self.stream_id = stream_id
        self.remote_closed = False
        self.local_closed = False
        # The request's content-length (-1 if none) and the body bytes received (§8.1.1).
        self.expected_length = -1
        self.received_length = 0
        self.send_window = send_window
        self.receive_window = receive_window
        # Body bytes the caller has consumed and not yet given back to the client.
        self.unacknowledged = 0


class StreamClosedError(Exception):
    """The server tried to send on a stream that is closed (or never was)."""


class H2Machine:
    """One HTTP/2 server connection's state: bytes in, events and bytes out."""

    __slots__ = (
        "closed_streams",
        "closed_streams_kept",
        "connection_receive_window",
        "connection_send_window",
        "connection_unacknowledged",
        "control_budget",
        "decoder",
        "encoder",
        "extended_connect",
        "frames_without_effect",
        "goaway_received",
        "goaway_sent",
        "highest_stream_id",
        "limits",
        "local_settings_acknowledged",
        "preface_left",
        "reader",
        "remote_initial_window",
        "reset_budget",
        "settings_received",
        "streams",
        "terminated",
        "writer",
    )

    def __init__(self, limits: H2Limits, extended_connect: bool, now: float) -> None:
        self.limits = limits
        self.extended_connect = extended_connect
        self.reader = FrameReader(limits.h2_max_frame_size, limits.h2_max_header_list_size)
        self.writer = FrameWriter()
        self.decoder = HeaderDecoder(limits.h2_max_header_list_size)
        self.encoder = HeaderEncoder(unindexed_names=_UNINDEXED_RESPONSE_FIELDS)
        self.streams: dict[int, StreamState] = {}
        self.closed_streams: dict[int, int] = {}
        self.closed_streams_kept = max(_CLOSED_STREAMS_KEPT, 2 * limits.h2_max_concurrent_streams)
        self.highest_stream_id = 0
        self.preface_left = PREFACE
        self.settings_received = False
        self.local_settings_acknowledged = False
        self.goaway_received = False
        self.goaway_sent = False
        self.terminated = False
        self.remote_initial_window = DEFAULT_WINDOW
        self.connection_send_window = DEFAULT_WINDOW
        self.connection_receive_window = DEFAULT_WINDOW
        self.connection_unacknowledged = 0
        self.control_budget = RateBudget(limits.h2_max_control_frames, now)
        self.reset_budget = RateBudget(limits.h2_max_reset_streams, now)
        # Frames handled here that the caller hears nothing of (late frames on closed
        # streams...): they spend the control budget all the same.
        self.frames_without_effect = 0

    # -- starting -----------------------------------------------------------------------------

    def initiate_connection(self) -> None:
        """Queue the server's preface: its SETTINGS (§3.4), and the connection window opened
        to room for every stream's window at once."""
        limits = self.limits
        self.writer.settings(
            [
                (MAX_CONCURRENT_STREAMS, limits.h2_max_concurrent_streams),
                (INITIAL_WINDOW_SIZE, limits.h2_initial_window_size),
                (MAX_FRAME_SIZE, limits.h2_max_frame_size),
                (MAX_HEADER_LIST_SIZE, limits.h2_max_header_list_size),
                # RFC 9113 §8.4: this server never pushes.
                (ENABLE_PUSH, 0),
                # RFC 8441 §3: WebSockets by extended CONNECT, when they are on.
                (ENABLE_CONNECT_PROTOCOL, int(self.extended_connect)),
            ]
        )
        increment = limits.connection_window - DEFAULT_WINDOW
        if increment > 0:
            self.writer.window_update(0, increment)
            self.connection_receive_window += increment

    def initiate_upgrade_connection(self, settings_payload: bytes) -> None:
        """Serve an accepted ``Upgrade: h2c`` (RFC 7540 §3.2): the client's HTTP2-Settings
        (decoded) apply at once, acknowledged by the 101 itself (§3.2.1), and the request
        is stream 1, half-closed (remote). :class:`FrameError` for unacceptable settings."""
        if len(settings_payload) % 6:
            raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "HTTP2-Settings of a partial setting")
        self._apply_settings(parse_settings(settings_payload))
        self.initiate_connection()
        stream = StreamState(1, self.remote_initial_window, self._initial_receive_window())
        stream.remote_closed = True
        self.streams[1] = stream
        self.highest_stream_id = 1

    def data_to_send(self) -> bytes:
        return self.writer.take()

    # -- receiving ----------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[H2Event]:
        """The events the client's ``data`` brings; a connection error raises
        :class:`FrameError` with the GOAWAY queued."""
        events: list[H2Event] = []
        if self.terminated:
            return events
        try:
            if self.preface_left:
                data = self._take_preface(data)
            reader = self.reader
            reader.feed(data)
            while (frame := reader.next_frame()) is not None:
                self._receive_frame(frame, events, now)
                if reader.uncharged_frames:
                    self.frames_without_effect += reader.uncharged_frames
                    reader.uncharged_frames = 0
                if self.frames_without_effect:
                    spent, self.frames_without_effect = self.frames_without_effect, 0
                    self._spend_control(now, spent)
            if reader.uncharged_frames:
                spent, reader.uncharged_frames = reader.uncharged_frames, 0
                self._spend_control(now, spent)
        except FrameError as exc:
            self.close_connection(exc.code)
            raise
        return events

    def _take_preface(self, data: bytes) -> bytes:
        expected = self.preface_left
        taken = data[: len(expected)]
        if not expected.startswith(taken):
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "not the HTTP/2 connection preface")
        self.preface_left = expected[len(taken) :]
        return data[len(taken) :]

    def _receive_frame(self, frame: Frame, events: list[H2Event], now: float) -> None:
        frame_type = frame.type
        if not self.settings_received:
            # §3.4: the client's preface ends with its SETTINGS.
            if frame_type != SETTINGS or frame.flags & ACK:
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "the preface lacks SETTINGS")
            self.settings_received = True
        try:
            if frame_type == DATA:
                self._receive_data_frame(frame, events, now)
            elif frame_type == HEADERS:
                self._receive_headers(frame, events, now)
            elif frame_type == RST_STREAM:
                self._receive_rst_stream(frame, events, now)
            elif frame_type == WINDOW_UPDATE:
                self._receive_window_update(frame, events, now)
            elif frame_type == SETTINGS:
                self._receive_settings(frame, events, now)
            elif frame_type == PING:
                if not frame.flags & ACK:
                    self.writer.ping_ack(frame.payload)
                self._spend_control(now, 1)
            elif frame_type == GOAWAY:
                self._receive_goaway(frame, events, now)
            elif frame_type == PRIORITY:
                # Accepted and ignored, on any stream (RFC 9113 §5.3.2 deprecates the signal).
                self._spend_control(now, 1)
        except FrameError as exc:
            if not exc.stream_id:
                raise
            self._stream_error(exc.stream_id, exc.code, events, now)

    def _receive_headers(self, frame: Frame, events: list[H2Event], now: float) -> None:
        stream_id = frame.stream_id
        # The block is decoded whatever becomes of the stream: HPACK's table depends on it.
        try:
            headers = self.decoder.decode(frame.payload)
        except HeaderCompressionError as exc:
            # RFC 9113 §4.3: an undecodable block is a COMPRESSION_ERROR; a bomb is abuse.
            # (One handler: mypyc types ``exc`` by the first of two, and then fails the second.)
            code = (
                ErrorCode.ENHANCE_YOUR_CALM
                if isinstance(exc, HeaderListTooLarge)
                else ErrorCode.COMPRESSION_ERROR
            )
            raise FrameError(code, str(exc)) from exc
        end_stream = bool(frame.flags & END_STREAM)
        stream = self.streams.get(stream_id)
        if stream is not None:
            if stream.remote_closed:
                # §5.1: half-closed (remote) takes no more HEADERS.
                raise FrameError(ErrorCode.STREAM_CLOSED, "HEADERS after END_STREAM", stream_id)
            # §8.1: a second header block ends the stream as trailers.
            if not end_stream:
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "trailers without END_STREAM")
            event = H2Event(TRAILERS, stream_id)
            event.headers = headers
            event.end_stream = True
            events.append(event)
            self._remote_end(stream)
            return
        if stream_id <= self.highest_stream_id:
            self._frame_on_closed_stream(stream_id)
            return
        self._check_new_stream_id(stream_id)
        self.highest_stream_id = stream_id
        if (
            len(self.streams) >= self.limits.h2_max_concurrent_streams
            or self.goaway_received
            or self.goaway_sent
        ):
            # §5.1.2: over the advertised limit, the stream is refused; DATA it already
            # sent is then answered on the stream, as after any reset.
            self.streams[stream_id] = StreamState(stream_id, 0, 0)
            self._stream_error(stream_id, ErrorCode.REFUSED_STREAM, events, now)
            return
        self.control_budget.earn(1)
        stream = StreamState(stream_id, self.remote_initial_window, self._initial_receive_window())
        stream.expected_length = _content_length(headers)
        self.streams[stream_id] = stream
        event = H2Event(REQUEST, stream_id)
        event.headers = headers
        event.end_stream = end_stream
        events.append(event)
        if end_stream:
            self._remote_end(stream)

    def _is_idle(self, stream_id: int) -> bool:
        """§5.1: a stream the client has not opened yet, or one only the server could open
        (even ids: this server opens none)."""
        return stream_id > self.highest_stream_id or not stream_id % 2

    def _check_new_stream_id(self, stream_id: int) -> None:
        # §5.1.1: a client opens odd-numbered streams, each above the last.
        if not stream_id % 2:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "an even stream id from a client")

    def _initial_receive_window(self) -> int:
        if self.local_settings_acknowledged:
            return self.limits.h2_initial_window_size
        # §6.9.2: until the client acknowledges our SETTINGS, it may use the default window.
        return max(self.limits.h2_initial_window_size, DEFAULT_WINDOW)

    def _receive_data_frame(self, frame: Frame, events: list[H2Event], now: float) -> None:
        stream_id = frame.stream_id
        # §6.1: the whole frame, padding included, counts against the windows.
        length = frame.length
        self.connection_receive_window -= length
        if self.connection_receive_window < 0:
            raise FrameError(ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            # Not the caller's to consume: the connection window is given back at once.
            self.acknowledge(0, length)
            if stream is not None:
                # §5.1: half-closed (remote) takes no more DATA.
                raise FrameError(ErrorCode.STREAM_CLOSED, "DATA after END_STREAM", stream_id)
            if self._is_idle(stream_id):
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "DATA on an idle stream")
            # §6.1: however the stream closed, a stream error.
            raise FrameError(ErrorCode.STREAM_CLOSED, "DATA on a closed stream", stream_id)
        stream.receive_window -= length
        if stream.receive_window < 0:
            raise FrameError(ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the stream window")
        end_stream = bool(frame.flags & END_STREAM)
        stream.received_length += len(frame.payload)
        if 0 <= stream.expected_length != stream.received_length and (
            end_stream or stream.received_length > stream.expected_length
        ):
            # §8.1.1 makes it a malformed request; as in h2, the connection fails, and only
            # DATA frames are checked (a request ended by its HEADERS or trailers is not).
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "a body unlike its content-length")
        if not frame.payload and not end_stream:
            # Empty DATA frames carry nothing and cost work (CVE-2019-9518).
            self._spend_control(now, 1)
        event = H2Event(DATA_RECEIVED, stream_id)
        event.data = frame.payload
        event.flow_controlled_length = length
        event.end_stream = end_stream
        events.append(event)
        if end_stream:
            self._remote_end(stream)

    def _receive_rst_stream(self, frame: Frame, events: list[H2Event], now: float) -> None:
        stream_id = frame.stream_id
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            self.frames_without_effect += 1
            return
        self._close_stream(stream_id, _CLOSED_BY_RESET)
        event = H2Event(STREAM_RESET, stream_id)
        event.error_code = read_uint32(frame.payload, 0)
        events.append(event)
        if not stream.local_closed:
            # The client no longer wants an answer it asked for (rapid reset, CVE-2023-44487).
            self._spend_reset(now)

    def _receive_window_update(self, frame: Frame, events: list[H2Event], now: float) -> None:
        stream_id = frame.stream_id
        increment = read_uint31(frame.payload, 0)
        self._spend_control(now, 1)
        if not stream_id:
            self.connection_send_window += increment
            if self.connection_send_window > MAX_WINDOW:
                raise FrameError(ErrorCode.FLOW_CONTROL_ERROR, "a connection window over 2^31-1")
            events.append(H2Event(WINDOW_OPENED, 0))
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            raise FrameError(ErrorCode.FLOW_CONTROL_ERROR, "a window over 2^31-1", stream_id)
        events.append(H2Event(WINDOW_OPENED, stream_id))

    def _receive_settings(self, frame: Frame, events: list[H2Event], now: float) -> None:
        self._spend_control(now, 1)
        if frame.flags & ACK:
            if not self.local_settings_acknowledged:
                self.local_settings_acknowledged = True
                self._apply_local_initial_window()
            return
        window_changed = self._apply_settings(parse_settings(frame.payload))
        self.writer.settings_ack()
        event = H2Event(SETTINGS_CHANGED, 0)
        event.end_stream = window_changed
        events.append(event)

    def _apply_settings(self, settings: list[tuple[int, int]]) -> bool:
        """Take the client's settings; whether the initial window changed."""
        window_changed = False
        for parameter, value in settings:
            if parameter == HEADER_TABLE_SIZE:
                table_size = min(value, DEFAULT_TABLE_SIZE)
                if table_size != self.encoder.table.max_size:
                    self.encoder.resize(table_size)
            elif parameter == INITIAL_WINDOW_SIZE:
                delta = value - self.remote_initial_window
                self.remote_initial_window = value
                window_changed = True
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        # §6.9.2: a connection error.
                        raise FrameError(ErrorCode.FLOW_CONTROL_ERROR, "a window over 2^31-1")
            elif parameter == MAX_FRAME_SIZE:
                self.writer.max_frame_size = value
        return window_changed

    def _apply_local_initial_window(self) -> None:
        """Our SETTINGS are acknowledged: the windows of streams opened before shrink to our
        initial window if it is below the default (§6.9.2)."""
        delta = self.limits.h2_initial_window_size - DEFAULT_WINDOW
        if delta < 0:
            for stream in self.streams.values():
                stream.receive_window += delta

    def _receive_goaway(self, frame: Frame, events: list[H2Event], now: float) -> None:
        self._spend_control(now, 1)
        last_stream_id, code, _ = parse_goaway(frame.payload)
        self.goaway_received = True
        event = H2Event(GOAWAY_RECEIVED, last_stream_id)
        event.error_code = code
        events.append(event)

    def _frame_on_closed_stream(self, stream_id: int) -> None:
        """A frame that needs an open stream, on one that closed (§5.1): after a reset it
        may have been in flight, and is answered on the stream; otherwise the client knows
        better, and the connection fails."""
        closed_by = self.closed_streams.get(stream_id, 0)
        if closed_by == _CLOSED_BY_RESET:
            self.writer.rst_stream(stream_id, ErrorCode.STREAM_CLOSED)
        elif closed_by == _CLOSED_BY_END:
            raise FrameError(ErrorCode.STREAM_CLOSED, "a frame on a closed stream")
        else:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "a frame on a stream never opened")

    def _stream_error(self, stream_id: int, code: int, events: list[H2Event], now: float) -> None:
        """§5.4.2: reset the stream, and tell the caller (its app, if any, must stop)."""
        self.writer.rst_stream(stream_id, code)
        if stream_id in self.streams:
            self._close_stream(stream_id, _CLOSED_BY_RESET)
            event = H2Event(STREAM_REFUSED, stream_id)
            event.error_code = code
            events.append(event)
        # A client can provoke server resets on purpose (MadeYouReset, CVE-2025-8671).
        self._spend_reset(now)

    def _remote_end(self, stream: StreamState) -> None:
        stream.remote_closed = True
        if stream.local_closed:
            self._close_stream(stream.stream_id, _CLOSED_BY_END)

    def _close_stream(self, stream_id: int, closed_by: int) -> None:
        self.streams.pop(stream_id, None)
        self._remember_closed(stream_id, closed_by)

    def _remember_closed(self, stream_id: int, closed_by: int) -> None:
        closed = self.closed_streams
        closed[stream_id] = closed_by
        kept = self.closed_streams_kept
        if len(closed) >= 2 * kept:
            # The newest are kept, in one rebuild now and then: deleting the oldest one at
            # a time would leave the dict a scan over deleted slots for every next(iter()).
            self.closed_streams = dict(list(closed.items())[-kept:])

    # -- budgets (§10.5) ----------------------------------------------------------------------

    def _spend_control(self, now: float, cost: int) -> None:
        if not self.control_budget.spend(now, cost):
            raise FrameError(ErrorCode.ENHANCE_YOUR_CALM, "too many control frames")

    def _spend_reset(self, now: float) -> None:
        if not self.reset_budget.spend(now):
            raise FrameError(ErrorCode.ENHANCE_YOUR_CALM, "too many reset streams")

    # -- sending ------------------------------------------------------------------------------

    def _sendable(self, stream_id: int) -> StreamState:
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed or self.terminated:
            raise StreamClosedError(f"stream {stream_id} is closed")
        return stream

    def send_headers(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool
    ) -> None:
        """A response's (or trailers', or an informational response's) header block."""
        stream = self._sendable(stream_id)
        self.writer.headers(stream_id, self.encoder.encode(headers), end_stream)
        if end_stream:
            self._local_end(stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """One DATA frame; ``data`` must fit the windows and the client's frame size."""
        stream = self._sendable(stream_id)
        size = len(data)
        if size > min(stream.send_window, self.connection_send_window):
            raise ValueError("DATA beyond the flow-control window")
        stream.send_window -= size
        self.connection_send_window -= size
        self.writer.data(stream_id, data, end_stream)
        # Sent data earns back the control budget the client's WINDOW_UPDATEs for it spend,
        # in proportion: a window refilled whole, however small, pays for itself; one
        # opened a few bytes at a time (data dribble, CVE-2019-9511) does not.
        self.control_budget.earn(size * _BUDGET_EARNED_PER_BYTE + (2 if end_stream else 0))
        if end_stream:
            self._local_end(stream)

    def _local_end(self, stream: StreamState) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            self._close_stream(stream.stream_id, _CLOSED_BY_END)

    def send_window(self, stream_id: int) -> int:
        """How much DATA the stream may send now (0 for a closed stream)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        return max(0, min(stream.send_window, self.connection_send_window))

    @property
    def max_outbound_frame_size(self) -> int:
        return self.writer.max_frame_size

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Give ``size`` consumed body bytes back to the client's windows, in batches: a
        WINDOW_UPDATE once half a window is owed (the stream's only while it can still
        send)."""
        self.connection_unacknowledged += size
        if self.connection_unacknowledged >= self.limits.connection_window // 2:
            self.writer.window_update(0, self.connection_unacknowledged)
            self.connection_receive_window += self.connection_unacknowledged
            self.connection_unacknowledged = 0
        stream = self.streams.get(stream_id) if stream_id else None
        if stream is None or stream.remote_closed:
            return
        stream.unacknowledged += size
        if stream.unacknowledged >= self.limits.h2_initial_window_size // 2:
            self.writer.window_update(stream_id, stream.unacknowledged)
            stream.receive_window += stream.unacknowledged
            stream.unacknowledged = 0

    def reset_stream(self, stream_id: int, code: int, now: float) -> bool:
        """Reset a stream from the server side; ``False`` if it was closed already. Resets a
        client can provoke spend its reset budget (MadeYouReset, CVE-2025-8671)."""
        if stream_id not in self.streams or self.terminated:
            return False
        self.writer.rst_stream(stream_id, code)
        self._close_stream(stream_id, _CLOSED_BY_RESET)
        if code in _RESETS_A_CLIENT_CAN_PROVOKE and not self.reset_budget.spend(now):
            self.close_connection(ErrorCode.ENHANCE_YOUR_CALM)
        return True

    def send_goaway(self) -> None:
        """Graceful shutdown (§6.8): a GOAWAY naming the last stream this server processes;
        the streams up to it go on, later ones are refused."""
        if not (self.goaway_sent or self.terminated):
            self.goaway_sent = True
            self.writer.goaway(self.highest_stream_id, ErrorCode.NO_ERROR)

    def close_connection(self, code: int) -> None:
        """Queue a GOAWAY naming the last stream this server processes (§6.8); nothing is
        received or sent after it."""
        if not self.terminated:
            self.terminated = True
            self.writer.goaway(self.highest_stream_id, code)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """A request's content-length, or -1; a value that is not a number, or two that
    differ, make the request malformed (RFC 9113 §8.1.1; the connection fails, as h2's)."""
    length = -1
    for name, value in headers:
        if name == b"content-length":
            if not (value.isdigit() and len(value) <= 18) or 0 <= length != int(value):
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "an invalid content-length")
            length = int(value)
    return length
