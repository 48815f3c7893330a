"""HTTP/2 (RFC 9113): the asyncio protocol of one connection.

``machine.H2Machine`` is the sans-I/O layer: it is fed bytes and returns events, and turns
the streams' calls into frames to send. This module moves those bytes, starts an app per
stream (``stream.H2Stream``) and keeps the streams counted against the limits while their
apps run. ``negotiation.py`` decides which connections speak HTTP/2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final, cast

from hasten.asgi import HTTPRequestError
from hasten.logs import error_logger
from hasten.protocols.exchange import (
    CONNECTION_SPECIFIC_FIELDS,
    FILE_EXTENSIONS,
    at_capacity,
    http_scope,
    start_app_task,
)
from hasten.protocols.flow import PAUSED_FOR_WRITES, FlowControl, ReadingFollowsWriting
from hasten.protocols.http1.checks import known_target, split_target
from hasten.protocols.http1.connection import RequestCycle, connection_origin, server_address
from hasten.protocols.http2.fields import (
    MalformedRequest,
    RequestFields,
    check_trailer_fields,
    parse_request_fields,
)
from hasten.protocols.http2.frames import ErrorCode, FrameError
from hasten.protocols.http2.limits import H2Limits
from hasten.protocols.http2.machine import (
    DATA_RECEIVED,
    GOAWAY_RECEIVED,
    PREFACE,
    REQUEST,
    SETTINGS_CHANGED,
    STREAM_REFUSED,
    STREAM_RESET,
    TRAILERS,
    WINDOW_OPENED,
    H2Event,
    H2Machine,
)
from hasten.protocols.http2.stream import H2Stream, StreamHandler
from hasten.protocols.websocket.over_http2 import open_websocket_stream
from hasten.state import ServerState

SWITCHING_PROTOCOLS = (
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
)
# The ASGI extensions every HTTP/2 request's scope offers.
_ADVERTISED_EXTENSIONS = ("http.response.trailers", "http.response.early_hint", *FILE_EXTENSIONS)
STREAM_TASK_NAME: Final = "hasten.http2.stream"
# How long input is read and dropped after a GOAWAY before the socket is closed.
_LINGER_SECONDS = 1.0
# Frame bytes queued past which they are written at once instead of at the end of the loop
# turn: an app that sends without ever yielding (a client with wide-open windows) then
# meets the transport's backpressure instead of growing the queue without end.
_FLUSH_NOW_SIZE: Final = 64 * 1024


class H2Connection(ReadingFollowsWriting, asyncio.Protocol):
    """One HTTP/2 connection: frames in, a running app per stream, frames out."""

    __slots__ = (
        "client",
        "closing",
        "default_block",
        "default_pairs",
        "extensions",
        "flow",
        "flush_scheduled",
        "h2",
        "idle_since",
        "last_request_fields",
        "limits",
        "lingering",
        "scheme",
        "server",
        "state",
        "streams",
        "transport",
        "upgrade_body_left",
    )

    def __init__(self, state: ServerState, limits: H2Limits) -> None:
        self.state = state
        self.limits = limits
        self.streams: dict[int, StreamHandler] = {}
        self.closing = False
        self.lingering = False
        self.flush_scheduled = False
        self.upgrade_body_left = 0
        self.idle_since = 0.0
        self.default_block = b""
        self.default_pairs: list[tuple[bytes, bytes]] = []
        self.last_request_fields: RequestFields | None = None
        self.h2 = H2Machine(
            limits, extended_connect=state.protocols.websocket is not None, now=state.loop.time()
        )

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(transport)
        self.h2.initiate_connection()
        self.flush()
        if self.state.shutting_down:
            self.shutdown()

    def _attach(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        self.flow = FlowControl(transport)
        self.client, self.scheme, tls = connection_origin(self.state, transport)
        self.server = server_address(transport.get_extra_info("sockname"))
        self.extensions: dict[str, Any] = {name: {} for name in _ADVERTISED_EXTENSIONS}
        if tls is not None:
            self.extensions["tls"] = tls
        self.idle_since = self.state.loop.time()
        self.state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.flow.connection_lost()
        for stream in self.streams.values():
            if stream.disconnected:
                # Already told (a stall timeout): its send() raises, its receive() returns
                # the disconnect, and it ends itself, as over HTTP/1.1.
                continue
            stream.client_gone()
            if not stream.response_complete:
                stream.cancel()

    def eof_received(self) -> bool:
        # A half-closed HTTP/2 connection can't send a GOAWAY or WINDOW_UPDATE: close it.
        return False

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        if self.upgrade_body_left:
            data = self._take_upgrade_body(data)
            if not data:
                return
        try:
            events = self.h2.receive_data(data, self.state.loop.time())
        except FrameError as exc:
            # The machine has queued the GOAWAY with the code RFC 9113 asks for.
            if exc.code == ErrorCode.ENHANCE_YOUR_CALM:
                error_logger.warning("Closing HTTP/2 connection from %s: %s.", self.client, exc)
            else:
                error_logger.debug("HTTP/2 protocol error from %s: %s", self.client, exc)
            self._close_after_goaway()
            return
        for event in events:
            kind = event.kind
            if kind == REQUEST:
                self._on_request(event)
            elif kind == DATA_RECEIVED:
                self._on_data(event)
            elif kind == WINDOW_OPENED:
                self._on_window_opened(event.stream_id)
            elif kind == TRAILERS:
                self._on_trailers(event)
            elif kind in (STREAM_RESET, STREAM_REFUSED):
                self._on_stream_reset(event)
            elif kind == SETTINGS_CHANGED:
                if event.end_stream:  # the initial window changed
                    self._wake_window_waiters()
            elif kind == GOAWAY_RECEIVED:
                self._on_goaway(event)
            if self.lingering or self.transport.is_closing():
                return
        self.flush()

    # -- events from the machine ------------------------------------------------------------

    def _on_request(self, event: H2Event) -> None:
        stream_id = event.stream_id
        if self.closing or len(self.streams) >= self.limits.h2_max_concurrent_streams:
            # Streams whose app still runs count, even if the machine sees them closed (a
            # reset provoked by the client, CVE-2025-8671); refusing one spends the reset
            # budget.
            self.reset_stream(stream_id, ErrorCode.REFUSED_STREAM)
            return
        try:
            fields = parse_request_fields(
                event.headers, self.h2.extended_connect, self.last_request_fields
            )
        except MalformedRequest as exc:
            self._refuse_malformed(stream_id, exc)
            return
        self.last_request_fields = fields
        scope, status = self._build_scope(fields)
        if fields.protocol:
            open_websocket_stream(self, stream_id, scope, status, fields.protocol)
            stream = self.streams.get(stream_id)
        else:
            stream = self._open_stream(stream_id, scope, status)
        if stream is not None and event.end_stream:
            stream.end_body()

    def _on_trailers(self, event: H2Event) -> None:
        """Request trailers are dropped, as over HTTP/1.1; malformed ones reset the stream."""
        try:
            check_trailer_fields(event.headers)
        except MalformedRequest as exc:
            self._refuse_malformed(event.stream_id, exc)
            return
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.end_body()

    def _refuse_malformed(self, stream_id: int, exc: MalformedRequest) -> None:
        """RFC 9113 §8.1.1: a malformed request is a stream error, not a connection error."""
        error_logger.debug("Malformed HTTP/2 request from %s: %s", self.client, exc)
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.client_gone()
            if not stream.response_complete:
                stream.cancel()
        self.reset_stream(stream_id, ErrorCode.PROTOCOL_ERROR)

    def _open_stream(self, stream_id: int, scope: dict[str, Any], status: int) -> H2Stream | None:
        """Start the app for a request, or answer it with ``status`` if that is not 0."""
        stream = H2Stream(self, stream_id, scope)
        if status:
            self.answer_stream(stream, status)
            return None
        self.start_stream(stream)
        return stream

    def start_stream(self, stream: StreamHandler) -> None:
        """Start the app of a new stream."""
        self.streams[stream.stream_id] = stream
        self.idle_since = 0.0
        # The stream reports its end itself (app_finished), rather than through a done
        # callback: that would cost one more loop callback per request.
        stream.task = start_app_task(self.state, stream.run(), STREAM_TASK_NAME)

    def answer_stream(
        self, stream: H2Stream, status: int, extra_fields: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        """Answer a new stream's request with ``status`` (and ``extra_fields``), not its app."""
        self.streams[stream.stream_id] = stream
        self.idle_since = 0.0
        stream.send_error_response(status, extra_fields)
        self.stream_task_done(stream)

    def _build_scope(self, fields: RequestFields) -> tuple[dict[str, Any], int]:
        """The ASGI scope of a request, and the error status to answer it with (or 0)."""
        method, target = fields.method, fields.target
        # A copy: the fields may be the next request's too (parse_request_fields).
        headers = fields.headers.copy()
        status = 0
        if self.limits.limit_request_body is not None:
            for name, value in headers:
                if name == b"content-length" and self._body_over_limit(value):
                    status = 413
        split = known_target(target)
        if split is None:
            try:
                # Origin-form targets are split (and remembered) as HTTP/1.1's are.
                split = split_target(method, target) if target[:1] == b"/" else None
            except HTTPRequestError:
                status = 400
        if split is not None:
            raw_path, query_string, path = split
        else:  # "*" (OPTIONS), "" (CONNECT), or a target refused above
            raw_path, _, query_string = target.partition(b"?")
            path = "/" if status else raw_path.decode("ascii", "replace")
        if method == b"CONNECT" and not fields.protocol:
            # An origin server is not a tunnel (RFC 9110 §9.3.6).
            status = 501
        scope = http_scope(
            self.state,
            "2",
            self.scheme,
            method.decode("ascii", "replace"),
            path,
            raw_path,
            query_string,
            headers,
            self.client,
            self.server,
            self.extensions.copy(),
        )
        if not status and at_capacity(self.state):
            status = 503
        return scope, status

    def _body_over_limit(self, content_length: bytes) -> bool:
        limit = self.limits.limit_request_body
        # The machine has checked that content-length is a number (RFC 9113 §8.1.1).
        return limit is not None and content_length.isdigit() and int(content_length) > limit

    def app_finished(self, stream: StreamHandler) -> None:
        if stream.task is not None:
            self.state.tasks.discard(stream.task)
            stream.task = None  # no reference cycle left for the garbage collector
        self.stream_task_done(stream)

    def stream_task_done(self, stream: StreamHandler) -> None:
        """A stream's app is over: the stream no longer counts against the limits."""
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
            if stream.unacknowledged:
                self.acknowledge(stream.stream_id, stream.unacknowledged)
                stream.unacknowledged = 0
        if not self.streams:
            self.idle_since = self.state.loop.time()
            if self.closing:
                # After a graceful GOAWAY the client has nothing left to send: no linger.
                self.flush()
                self.close_transport()

    def _on_data(self, event: H2Event) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            self.h2.acknowledge(event.stream_id, event.flow_controlled_length)
            return
        stream.feed_body(event.data, event.flow_controlled_length)
        limit = self.limits.limit_request_body
        if limit is not None and stream.received_length > limit and not stream.disconnected:
            error_logger.debug("HTTP/2 request body over --limit-request-body; refusing it.")
            stream.refuse_body()
        elif event.end_stream:
            stream.end_body()

    def _on_stream_reset(self, event: H2Event) -> None:
        """The client reset the stream, or the machine did for a stream error."""
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.response_complete:
            return
        stream.client_gone()
        # The client no longer wants the answer: stop working on it (RFC 9113 §10.5).
        stream.cancel()

    def _on_window_opened(self, stream_id: int) -> None:
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.window_opened()
        else:
            self._wake_window_waiters()

    def _on_goaway(self, event: H2Event) -> None:
        error_logger.debug("HTTP/2 client at %s sent GOAWAY (%s)", self.client, event.error_code)
        self.closing = True
        if not self.streams:
            self.close_transport()

    def _wake_window_waiters(self) -> None:
        for stream in self.streams.values():
            stream.window_opened()

    # -- used by the streams ----------------------------------------------------------------

    def flush_soon(self) -> None:
        """Write the queued frames once the tasks ready in this loop turn have run.

        Stream apps run as tasks, often many in one turn (a client keeps dozens of streams
        in flight): their responses then leave in one write instead of one write each.
        """
        if self.h2.writer.size >= _FLUSH_NOW_SIZE:
            self.flush()
        elif not self.flush_scheduled:
            self.flush_scheduled = True
            self.state.loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self.flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write the queued frames, in one write."""
        data = self.h2.data_to_send()
        if data and not (self.lingering or self.transport.is_closing()):
            self.transport.write(data)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Give ``size`` consumed body bytes back to the client's flow-control windows."""
        if size and not self.transport.is_closing():
            self.h2.acknowledge(stream_id, size)
            self.flush_soon()

    def reset_stream(self, stream_id: int, error_code: ErrorCode) -> None:
        """Reset a stream from the server side; resets a client can provoke on purpose spend
        its reset budget (MadeYouReset, CVE-2025-8671), and exhausting it ends the
        connection."""
        self.h2.reset_stream(stream_id, error_code, self.state.loop.time())
        if self.h2.terminated:
            error_logger.warning(
                "Closing HTTP/2 connection from %s: too many reset streams.", self.client
            )
            self._close_after_goaway()
        else:
            self.flush_soon()

    def default_headers(self, overridden: set[bytes] | None) -> list[tuple[bytes, bytes]]:
        """The server's default response fields (date, server, --header) the app didn't set."""
        block = self.state.default_headers
        if block is not self.default_block:
            # The block is rebuilt once a second (for Date); parse it once per rebuild.
            self.default_block = block
            self.default_pairs = [
                (name.lower(), value)
                for name, _, value in (line.partition(b": ") for line in block.split(b"\r\n"))
                if name
            ]
        if not overridden:
            return self.default_pairs
        return [pair for pair in self.default_pairs if pair[0] not in overridden]

    def response_finished(self, stream: H2Stream) -> None:
        if not stream.body_complete and not self.transport.is_closing():
            # RFC 9113 §8.1: the response is complete, so the rest of the request body is
            # not needed: ask the client to stop sending it.
            self.h2.reset_stream(stream.stream_id, ErrorCode.NO_ERROR, self.state.loop.time())
            self.flush_soon()

    # -- shutdown ---------------------------------------------------------------------------

    def _close_after_goaway(self) -> None:
        """Send the queued GOAWAY, then close without losing it.

        Closing a socket with unread input makes the kernel send a reset, which can destroy
        the GOAWAY before the client reads it (a flooding client has plenty unread). So the
        write side is shut after the GOAWAY and input is read and dropped for a moment.
        """
        self.flush()
        transport = self.transport
        if transport.is_closing() or self.lingering:
            return
        if not transport.can_write_eof():  # TLS
            transport.close()
            return
        self.lingering = True
        transport.write_eof()
        self.flow.resume_reading(PAUSED_FOR_WRITES)
        self.state.loop.call_later(_LINGER_SECONDS, self.close_transport)

    def close_transport(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful shutdown: GOAWAY now, close once the streams in flight have finished
        (RFC 9113 §6.8); streams the client opens after it are refused."""
        self.closing = True
        for stream in list(self.streams.values()):
            stream.shutdown()
        if not (self.lingering or self.transport.is_closing()):
            self.h2.send_goaway()
            self.flush()
        if not self.streams:
            self.close_transport()

    def abort(self) -> None:
        self.transport.abort()

    def close_if_idle_since_before(self, deadline: float) -> None:
        """The server's once-a-second tick: close an idle connection, and reset the streams
        stalled on the client for longer than ``h2_timeout_stalled_stream``, and drop a client
        that has read nothing for ``timeout_response_write``."""
        now = self.state.loop.time()
        if self.flow.write_stalled_for(self.state.timeout_response_write, now):
            error_logger.debug("HTTP/2 client stopped reading; closing the connection.")
            # Every app learns of it as a disconnect (its send() raises ClientDisconnected):
            # a reset or GOAWAY would wait in the same unread buffer.
            for stream in list(self.streams.values()):
                stream.client_gone()
            self.abort()
            return
        if not self.streams:
            if self.idle_since and self.idle_since <= deadline:
                self.shutdown()
            return
        stalled_before = now - self.limits.h2_timeout_stalled_stream
        for stream in list(self.streams.values()):
            since = stream.stalled_since()
            if since is not None and since <= stalled_before:
                error_logger.debug("Resetting stalled HTTP/2 stream %d.", stream.stream_id)
                # The app, waiting in receive() or send(), learns of it as a disconnect.
                stream.client_gone()
                self.reset_stream(stream.stream_id, ErrorCode.CANCEL)

    # -- taking over an HTTP/1.1 connection -------------------------------------------------

    def take_over(self, transport: asyncio.BaseTransport, first_bytes: bytes) -> None:
        """Serve a cleartext connection whose first bytes were the preface (RFC 9113 §3.3)."""
        transport.set_protocol(self)
        self.connection_made(transport)
        self.data_received(PREFACE + first_bytes)

    def take_over_upgrade(
        self,
        cycle: RequestCycle,
        body_length: int,
        transport: asyncio.BaseTransport,
        rest: bytes,
    ) -> None:
        """Serve an accepted ``Upgrade: h2c`` (RFC 7540 §3.2): the request becomes stream 1,
        its body (still in HTTP/1.1 framing) is read first, then the client's preface."""
        transport.set_protocol(self)
        cast(asyncio.Transport, transport).write(SWITCHING_PROTOCOLS)
        self._attach(transport)
        # The request keeps its HTTP/1.1 scope, minus the fields HTTP/2 doesn't carry.
        headers = [
            (name, value)
            for name, value in cycle.scope["headers"]
            if name not in CONNECTION_SPECIFIC_FIELDS and name not in (b"http2-settings", b"te")
        ]
        scope = {
            **cycle.scope,
            "http_version": "2",
            "headers": headers,
            "extensions": self.extensions.copy(),
        }
        self.upgrade_body_left = body_length
        stream = self._open_stream(1, scope, 0)
        if stream is not None and not body_length:
            stream.end_body()
        self.flush()
        if self.state.shutting_down:
            self.shutdown()
        if rest:
            self.data_received(rest)

    def _take_upgrade_body(self, data: bytes) -> bytes:
        """Body bytes of the upgraded request go to stream 1; what follows is HTTP/2."""
        body, rest = data[: self.upgrade_body_left], data[self.upgrade_body_left :]
        self.upgrade_body_left -= len(body)
        stream = self.streams.get(1)
        if stream is not None:
            # Outside HTTP/2 flow control: nothing to acknowledge.
            stream.feed_body(body, 0)
            if not self.upgrade_body_left:
                stream.end_body()
        return rest
