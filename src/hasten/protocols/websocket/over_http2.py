"""WebSockets over HTTP/2 (RFC 8441): an extended CONNECT stream as the channel of a
:class:`~hasten.protocols.websocket.connection.WebSocketConnection`.

A CONNECT request with ``:protocol: websocket`` opens a WebSocket on its own stream: the
request is the handshake, a 200 response without END_STREAM accepts it (§5), then the
stream's DATA carries RFC 6455 frames both ways and END_STREAM stands for TCP's FIN (§6).
Flow control is HTTP/2's: received bytes are given back to the client's window only as the
app takes the messages, and frames leave as the stream's and the connection's windows
allow. The other streams of the connection never wait on a WebSocket's.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from websockets.exceptions import InvalidHandshake

from hasten.asgi import ClientDisconnected, Message, websocket_scope
from hasten.logs import error_logger, log_access
from hasten.protocols.flow import PAUSED_FOR_BODY, PAUSED_FOR_WRITES, FlowControl
from hasten.protocols.http2.frames import ErrorCode
from hasten.protocols.http2.machine import StreamClosedError
from hasten.protocols.http2.stream import H2Stream
from hasten.protocols.websocket.connection import (
    WebSocketConnection,
    WebSocketSettings,
    negotiate_extensions,
)

if TYPE_CHECKING:
    from hasten.protocols.http2.connection import H2Connection
    from hasten.protocols.websocket.permessage_deflate import PerMessageDeflate

# RFC 6455 §4.4: the version this server speaks, named when a request asks for another.
_VERSION_REQUIRED: Final = ((b"sec-websocket-version", b"13"),)
# Frame bytes held for a client whose window is closed: above the high mark the app's send()
# waits, and the client's own window stops reopening, until they drain to the low mark.
_WRITE_HIGH_WATER: Final = 64 * 1024
_WRITE_LOW_WATER: Final = 16 * 1024


def open_websocket_stream(
    conn: H2Connection, stream_id: int, scope: dict[str, Any], status: int, protocol: bytes
) -> None:
    """Open a WebSocket on an extended CONNECT stream (RFC 8441 §4), or answer the request
    with ``status`` if that is not 0, or with the error status the request calls for."""
    settings = conn.state.protocols.websocket
    # http2.fields refuses :protocol unless this server advertised extended CONNECT.
    assert settings is not None
    extra_fields: tuple[tuple[bytes, bytes], ...] = ()
    deflate: PerMessageDeflate | None = None
    handshake: list[tuple[bytes, bytes]] = []
    versions = [value for name, value in scope["headers"] if name == b"sec-websocket-version"]
    if status:
        pass
    elif protocol != b"websocket":
        # The only protocol this server implements a tunnel for (RFC 9110 §15.6.2).
        error_logger.debug("Extended CONNECT for protocol %r refused.", protocol)
        status = 501
    elif versions != [b"13"]:
        # RFC 8441 §5 keeps Sec-WebSocket-Version as RFC 6455 §4.2.2 defines it, which
        # answers 426; but a 426 must carry Upgrade (RFC 9110 §15.5.22), which HTTP/2
        # forbids (RFC 9113 §8.2.2), so the version is named in a 400.
        error_logger.debug("WebSocket handshake with version %r refused.", versions)
        status, extra_fields = 400, _VERSION_REQUIRED
    else:
        try:
            # Negotiates permessage-deflate; the subprotocol is the app's to choose.
            extensions_header, deflate = negotiate_extensions(settings, scope)
        except InvalidHandshake as exc:
            error_logger.debug("Invalid WebSocket handshake: %s", exc)
            status = 400
        else:
            if extensions_header is not None:
                handshake.append((b"sec-websocket-extensions", extensions_header))
    request = H2Stream(conn, stream_id, scope)
    if status:
        conn.answer_stream(request, status, extra_fields)
    else:
        conn.start_stream(H2WebSocketStream(request, settings, deflate, handshake))


class H2WebSocketStream:
    """An extended CONNECT stream carrying a WebSocket.

    Until the app accepts, the stream is an HTTP request, answered through ``request`` (an
    ``H2Stream``, whose app is never run): an error status, the 200 that accepts, or the
    app's own denial response. Then its DATA carries the WebSocket's frames.

    The stream stays counted against the connection's limits until both its app has
    returned and the stream is over (ended both ways cleanly, or reset): a closing
    handshake may outlast the app.
    """

    __slots__ = (
        "app_started",
        "conn",
        "end_pending",
        "feeding",
        "held_input",
        "outgoing",
        "over",
        "progress_at",
        "read_pauses",
        "request",
        "sending",
        "stream_id",
        "task",
        "unacknowledged",
        "websocket",
        "websocket_done",
    )

    def __init__(
        self,
        request: H2Stream,
        settings: WebSocketSettings,
        deflate: PerMessageDeflate | None,
        handshake_headers: list[tuple[bytes, bytes]],
    ) -> None:
        conn = self.conn = request.conn
        self.request = request
        self.stream_id = request.stream_id
        self.task: asyncio.Task[None] | None = None
        self.app_started = False
        self.websocket = WebSocketConnection(
            conn.state, settings, self, websocket_scope(request.scope), deflate, handshake_headers
        )
        # Received bytes not yet handed to the WebSocket (reading is paused), and those it
        # took but the client's window has not been given back yet.
        self.held_input = bytearray()
        self.unacknowledged = 0
        # Frame bytes the windows have no room for yet, and since when they wait.
        self.outgoing = bytearray()
        self.progress_at = 0.0
        self.read_pauses = 0
        self.feeding = False
        self.end_pending = False
        self.over = False
        self.websocket_done = False
        # The write side of flow control, for the stream's window: it never pauses reading.
        self.sending = FlowControl(conn.transport)

    @property
    def received_length(self) -> int:
        """Body bytes are frames, never counted against ``--limit-request-body``."""
        return 0

    @property
    def disconnected(self) -> bool:
        return self.over

    @property
    def response_complete(self) -> bool:
        """Whether the HTTP side is over: the app's own response, or an error response,
        was sent whole (or the stream is over)."""
        return self.request.response_complete

    @property
    def body_complete(self) -> bool:
        return self.request.body_complete

    # -- the app ----------------------------------------------------------------------------

    async def run(self) -> None:
        self.app_started = True
        try:
            await self.websocket.run()
        finally:
            self.websocket_done = True
            if self.over:
                self.conn.app_finished(self)

    def cancel(self) -> None:
        """The app is not cancelled when its stream goes: as over HTTP/1.1, it is told with a
        ``websocket.disconnect`` (1006), and ends itself."""

    def shutdown(self) -> None:
        self.websocket.shutdown()

    # -- the WebSocket's channel: the request -----------------------------------------------

    def refuse(self, status: int) -> None:
        self.request.send_error_response(status)
        self._stream_over()

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        """The 200 response of RFC 8441 §5, without END_STREAM: the frames follow it."""
        request = self.request
        request.start_response({"status": 200, "headers": headers})
        try:
            request.send_head(end_stream=False)
        except StreamClosedError:
            self._stream_over()
            raise ClientDisconnected("the stream closed before the accept") from None
        self.conn.flush_soon()
        if self.conn.state.access_log:
            log_access(
                request.scope,
                200,
                perf_counter() - request.start_time,
                response_headers=request.response_headers,
            )

    async def send_response(self, message: Message) -> None:
        await self.request.send(message)

    def fail_response(self) -> None:
        self.request.fail_response()
        self._stream_over()

    # -- the WebSocket's channel: frames in -------------------------------------------------

    def feed_body(self, data: bytes, flow_controlled_length: int) -> None:
        if self.over:
            self.conn.acknowledge(self.stream_id, flow_controlled_length)
            return
        self.unacknowledged += flow_controlled_length
        self.held_input += data
        self._feed()

    def end_body(self) -> None:
        self.request.body_complete = True
        self._feed()

    def refuse_body(self) -> None:
        """Never called: ``received_length`` stays 0."""

    def pause_reading(self) -> None:
        self.read_pauses |= PAUSED_FOR_BODY

    def resume_reading(self) -> None:
        self._resume_reading(PAUSED_FOR_BODY)

    def _resume_reading(self, reason: int) -> None:
        if self.read_pauses & reason:
            self.read_pauses &= ~reason
            self._feed()

    def _feed(self) -> None:
        """Hand the held bytes, then the end of the stream, to the WebSocket unless reading
        is paused; what it took is given back to the client's window."""
        if self.feeding:
            return
        self.feeding = True
        request = self.request
        try:
            while self.held_input and not (self.read_pauses or self.over):
                data = bytes(self.held_input)
                self.held_input.clear()
                self.websocket.receive_data(data)
            if request.body_complete and not (
                self.held_input or self.read_pauses or self.over or request.final_body_delivered
            ):
                request.final_body_delivered = True
                if self.websocket.is_open:
                    self.websocket.receive_eof()
                else:
                    # An extended CONNECT ended before it was answered: nothing to tunnel.
                    self.abort()
        finally:
            self.feeding = False
        if self.unacknowledged and not self.read_pauses:
            self.conn.acknowledge(self.stream_id, self.unacknowledged)
            self.unacknowledged = 0

    # -- the WebSocket's channel: frames out ------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.over or self.end_pending:
            return
        if not self.outgoing:
            # Stalled (stalled_since) only from the moment frames wait on the window.
            self.progress_at = self.conn.state.loop.time()
        self.outgoing += data
        self._send_outgoing()

    def end(self) -> None:
        if self.request.response_complete:
            # The app's own response, or an error response, ended the stream.
            self._stream_over()
        elif not (self.over or self.end_pending):
            self.end_pending = True
            self._send_outgoing()

    def abort(self) -> None:
        if not self.over:
            self.conn.reset_stream(self.stream_id, ErrorCode.CANCEL)
            self._stream_over()

    def is_closing(self) -> bool:
        return self.over or self.end_pending or self.conn.transport.is_closing()

    @property
    def write_paused(self) -> bool:
        return self.sending.write_paused or self.conn.flow.write_paused

    async def drain(self) -> None:
        """Wait for the stream's window, then for the connection's socket."""
        await self.sending.drain()
        if self.conn.flow.write_paused:
            await self.conn.flow.drain()

    def _send_outgoing(self) -> None:
        """Send the held frame bytes as the windows allow, then END_STREAM if it is due."""
        machine = self.conn.h2
        stream_id = self.stream_id
        outgoing = self.outgoing
        finished = False
        try:
            while outgoing:
                size = min(
                    machine.send_window(stream_id),
                    machine.max_outbound_frame_size,
                    len(outgoing),
                )
                if size <= 0:
                    break
                chunk = bytes(outgoing[:size])
                del outgoing[:size]
                self.request.send_frame(chunk, end_stream=False)
                self.progress_at = self.conn.state.loop.time()
            if self.end_pending and not outgoing:
                machine.send_data(stream_id, b"", True)
                finished = True
        except StreamClosedError:
            # The client reset the stream, or the connection is going.
            finished = True
        self.conn.flush_soon()
        if finished:
            self._stream_over()
            return
        size = len(outgoing)
        if size > _WRITE_HIGH_WATER:
            self.sending.pause_writing()
            # Reading follows writing: a client that doesn't take its frames (pongs and
            # close frames too) gets no window to send more in.
            self.read_pauses |= PAUSED_FOR_WRITES
        elif size <= _WRITE_LOW_WATER:
            self.sending.resume_writing()
            if self.read_pauses & PAUSED_FOR_WRITES:
                # Later, not from inside a write the WebSocket is making now.
                self.conn.state.loop.call_soon(self._resume_reading, PAUSED_FOR_WRITES)

    # -- the connection ---------------------------------------------------------------------

    def window_opened(self) -> None:
        # A denial response's body may be the one waiting.
        self.request.window_opened()
        if self.outgoing:
            self._send_outgoing()

    def stalled_since(self) -> float | None:
        """Frames waiting on the client's window stall the stream; an idle WebSocket, which
        waits on nothing, never does."""
        if self.outgoing:
            return self.progress_at
        return self.request.stalled_since()

    def client_gone(self) -> None:
        self._stream_over()

    def _stream_over(self) -> None:
        """Nothing more goes either way on this stream: the WebSocket is over."""
        if self.over:
            return
        self.over = True
        request = self.request
        request.response_complete = True
        self.held_input.clear()
        self.outgoing.clear()
        self.sending.connection_lost()
        request.client_gone()
        self.websocket.peer_gone()
        if self.websocket_done:
            # Not now: the connection may be going through its streams.
            self.conn.state.loop.call_soon(self.conn.app_finished, self)
