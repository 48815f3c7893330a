"""One accepted-or-pending WebSocket: ASGI messages to and from websockets' frames.

The app runs with a websocket scope. Until it accepts, the request's HTTP cycle remains the
way to answer over HTTP: 403 for a close before accept, 500 for a failure, or the app's own
response (the ``websocket.http.response`` denial extension). Once accepted, websockets
parses and serialises frames (masking, fragmentation, control frames, close codes,
permessage-deflate, size limits) and this module moves messages between it and the app,
with backpressure both ways.
"""

from __future__ import annotations

import asyncio
import codecs
import os
from collections import deque
from collections.abc import MutableMapping
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

from websockets.exceptions import ProtocolError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from hasten.asgi import (
    ClientDisconnected,
    Message,
    check_response_header,
    encode_headers,
    status_line,
    websocket_scope,
)
from hasten.config import Config
from hasten.logs import error_logger, log_access
from hasten.protocols.flow import PAUSED_FOR_BODY, READ_HIGH_WATER, ReadingFollowsWriting
from hasten.state import ServerState

if TYPE_CHECKING:
    from hasten.protocols.http1 import H1Connection, RequestCycle

# The only thing that matters in a ping's payload is that pongs to older pings don't match.
_PING_PAYLOAD_SIZE = 4

# Where the connection is: HTTP until the app accepts or denies, then frames or the
# app's own HTTP response, then over.
_HANDSHAKE = 0
_DENIAL = 1
_OPEN = 2
_CLOSED = 3


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """The ``ws_*`` settings, read once per server."""

    max_size: int
    max_queue: int
    ping_interval: float | None
    ping_timeout: float | None
    per_message_deflate: bool

    @classmethod
    def from_config(cls, config: Config) -> WebSocketSettings:
        return cls(
            max_size=config.ws_max_size,
            max_queue=config.ws_max_queue,
            ping_interval=config.ws_ping_interval,
            ping_timeout=config.ws_ping_timeout,
            per_message_deflate=config.ws_per_message_deflate,
        )


class WebSocketConnection(ReadingFollowsWriting, asyncio.Protocol):
    """One WebSocket: frames from websockets' ``ServerProtocol`` in, ASGI messages out.

    Incoming messages queue in ``incoming`` for the app's ``receive()``; once
    ``ws_max_queue`` are waiting the socket is no longer read. The app's ``send()`` waits
    while the peer does not read what it was sent.
    """

    def __init__(
        self,
        state: ServerState,
        settings: WebSocketSettings,
        conn: H1Connection,
        cycle: RequestCycle,
        protocol: ServerProtocol,
        handshake_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.state = state
        self.settings = settings
        self.cycle = cycle
        self.protocol = protocol
        self.handshake_headers = handshake_headers
        self.transport = conn.transport
        # The HTTP cycle writes the denial response through the same flow control.
        self.flow = conn.flow
        self.scope = websocket_scope(cycle.scope)
        self.phase = _HANDSHAKE
        self.connect_delivered = False
        self.incoming: deque[Message] = deque()
        self.disconnect: Message | None = None
        self.waiter: asyncio.Future[None] | None = None
        # Bytes the client sent before it was answered (RFC 6455 §4.1 says it must not);
        # they are read as frames once the app accepts.
        self.early_bytes = bytearray()
        self.message_parts: list[Any] = []
        # The decoder of the text message being reassembled; None for a binary one.
        self.text_decoder: codecs.IncrementalDecoder | None = None
        self.ping_timer: asyncio.TimerHandle | None = None
        self.pong_timer: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None

    def take_over(self, rest: bytes) -> None:
        """Become the transport's protocol and start the app."""
        self.transport.set_protocol(self)
        self.state.connections.add(self)
        if rest:
            self.data_received(rest)
        task = self.state.loop.create_task(self.run())
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    # -- asyncio.Protocol -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.phase == _HANDSHAKE:
            self.early_bytes += data
            if len(self.early_bytes) > READ_HIGH_WATER:
                self.flow.pause_reading(PAUSED_FOR_BODY)
            return
        if self.phase != _OPEN:
            return
        self.protocol.receive_data(data)
        self._handle_events()

    def eof_received(self) -> bool:
        if self.phase == _OPEN:
            self.protocol.receive_eof()
            self._handle_events()
        else:
            self._peer_gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.flow.connection_lost()
        for timer in (self.ping_timer, self.pong_timer, self.close_timer):
            if timer is not None:
                timer.cancel()
        self._peer_gone()

    # -- frames in --------------------------------------------------------------------------

    def _handle_events(self) -> None:
        protocol = self.protocol
        for event in protocol.events_received():
            frame = cast(Frame, event)
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
                if not self._collect(frame):
                    break
            elif opcode is Opcode.PONG:
                if self.pong_timer is not None:
                    self.pong_timer.cancel()
                    self.pong_timer = None
            elif opcode is Opcode.CLOSE:
                close = protocol.close_rcvd
                if close is not None:
                    self._set_disconnect(close.code, close.reason)
        if protocol.parser_exc is not None and self.disconnect is None:
            # websockets failed the connection (RFC 6455 §7.1.7) and sent the close code.
            sent = protocol.close_sent
            self._set_disconnect(
                sent.code if sent is not None else CloseCode.ABNORMAL_CLOSURE,
                sent.reason if sent is not None else "",
            )
        self._flush()

    def _collect(self, frame: Frame) -> bool:
        """Add a data frame to the message being received; False if that failed it."""
        opcode = frame.opcode
        try:
            if opcode is not Opcode.CONT and frame.fin:
                # The common case, a message in one frame, needs no reassembly.
                if opcode is Opcode.TEXT:
                    self._queue({"type": "websocket.receive", "text": str(frame.data, "utf-8")})
                else:
                    self._queue({"type": "websocket.receive", "bytes": bytes(frame.data)})
                return True
            if opcode is Opcode.TEXT:
                self.text_decoder = codecs.getincrementaldecoder("utf-8")()
            elif opcode is Opcode.BINARY:
                self.text_decoder = None
            decoder = self.text_decoder
            # Text is decoded fragment by fragment, so invalid UTF-8 fails at once.
            part = frame.data if decoder is None else decoder.decode(frame.data, frame.fin)
        except UnicodeDecodeError:
            # RFC 6455 §8.1: invalid UTF-8 fails the connection, with 1007.
            self.protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
            self._set_disconnect(CloseCode.INVALID_DATA, "")
            return False
        self.message_parts.append(part)
        if frame.fin:
            parts, self.message_parts = self.message_parts, []
            if decoder is None:
                self._queue({"type": "websocket.receive", "bytes": b"".join(parts)})
            else:
                self._queue({"type": "websocket.receive", "text": "".join(parts)})
        return True

    def _queue(self, message: Message) -> None:
        """Hand a message to the app's ``receive()``; a full queue stops the reading."""
        if self.disconnect is None:
            # Once the app has been told the connection is over, nothing is queued.
            self.incoming.append(message)
            if len(self.incoming) >= self.settings.max_queue:
                self.flow.pause_reading(PAUSED_FOR_BODY)
            self._wake()

    def _set_disconnect(self, code: int, reason: str) -> None:
        if self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._wake()

    def _peer_gone(self) -> None:
        """The TCP connection is over: whatever was not closed cleanly closed with 1006."""
        self._set_disconnect(CloseCode.ABNORMAL_CLOSURE, "")
        self.cycle.client_gone()
        if self.phase != _DENIAL:
            self.phase = _CLOSED

    # -- frames out -------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what websockets has to send; its end-of-stream marker closes the socket."""
        transport = self.transport
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            else:
                # RFC 6455 §7.1.1: the server closes the TCP connection first.
                transport.close()
        if self.close_timer is None and self.protocol.close_expected():
            timeout = self.settings.ping_timeout
            if timeout is not None:
                # The peer must answer our close frame, and take what is left to send,
                # in time (RFC 6455 §7.1.1); a closing transport may still wait on it.
                self.close_timer = self.state.loop.call_later(timeout, transport.abort)

    def _send_ping(self) -> None:
        """Keepalive: ping, and give up on a peer that doesn't pong in time."""
        interval = self.settings.ping_interval
        assert interval is not None
        self.ping_timer = self.state.loop.call_later(interval, self._send_ping)
        if self.protocol.state is not OPEN or self.pong_timer is not None:
            return
        self.protocol.send_ping(os.urandom(_PING_PAYLOAD_SIZE))
        self._flush()
        timeout = self.settings.ping_timeout
        if timeout is not None:
            self.pong_timer = self.state.loop.call_later(timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        error_logger.debug("WebSocket peer did not answer a ping in time; closing.")
        self.pong_timer = None
        self._set_disconnect(CloseCode.ABNORMAL_CLOSURE, "")
        self.transport.abort()

    def _close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake, unless one is under way."""
        if self.protocol.state is OPEN and not self.transport.is_closing():
            self.protocol.send_close(code, reason)
            self._flush()

    # -- the app ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the app and close properly whatever it does."""
        try:
            result: object = await self.state.app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
        except BaseException as exc:
            self._app_failed(exc)
            self._stop_queueing()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return
        self._stop_queueing()
        if result is not None:
            error_logger.error("ASGI callable returned a non-None value: %r", result)
        if self.phase == _HANDSHAKE:
            error_logger.error("ASGI callable returned without accepting or closing the WebSocket.")
            self.phase = _CLOSED
            self.cycle.send_error_response(500)
        elif self.phase == _DENIAL and not self.cycle.response_complete:
            error_logger.error("ASGI callable returned without completing the response.")
            self.transport.close()
        elif self.phase == _OPEN:
            self._close(CloseCode.NORMAL_CLOSURE)

    def _stop_queueing(self) -> None:
        """The app is done: what else arrives is not queued, and the peer is read again
        so that its close frame is seen."""
        self._set_disconnect(CloseCode.ABNORMAL_CLOSURE, "")
        self.incoming.clear()
        self.flow.resume_reading(PAUSED_FOR_BODY)

    def _app_failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self.transport.abort()
            return
        if self.disconnect is not None and isinstance(exc, ClientDisconnected):
            error_logger.debug("WebSocket closed while the app was sending.")
            return
        error_logger.error("Exception in ASGI application", exc_info=exc)
        if self.phase == _HANDSHAKE or (
            self.phase == _DENIAL and (self.cycle.head_pending or not self.cycle.response_started)
        ):
            self.phase = _CLOSED
            self.cycle.send_error_response(500)
        elif self.phase == _DENIAL:
            self.transport.close()
        else:
            # RFC 6455 §7.4.1: 1011, the server hit an unexpected condition.
            self._close(CloseCode.INTERNAL_ERROR)

    async def receive(self) -> Message:
        """The ASGI ``receive``: connect, then each message, then the disconnect."""
        if not self.connect_delivered:
            self.connect_delivered = True
            return {"type": "websocket.connect"}
        while not self.incoming and self.disconnect is None:
            waiter = self.waiter = self.state.loop.create_future()
            try:
                await waiter
            finally:
                self.waiter = None
        if self.incoming:
            message = self.incoming.popleft()
            if len(self.incoming) < self.settings.max_queue:
                self.flow.resume_reading(PAUSED_FOR_BODY)
            return message
        assert self.disconnect is not None
        return self.disconnect

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def send(self, message: Message) -> None:
        """The ASGI ``send``: accept, deny, or send messages and close once open."""
        message_type = message["type"]
        if self.phase == _HANDSHAKE:
            await self._send_handshake_reply(message_type, message)
        elif self.phase == _DENIAL:
            if message_type != "websocket.http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.http.response.body', "
                    f"but got {message_type!r}."
                )
            await self.cycle.send({**message, "type": "http.response.body"})
            if self.cycle.response_complete:
                self.phase = _CLOSED
                self.transport.close()
        elif self.phase == _OPEN and self.protocol.state is OPEN:
            if message_type == "websocket.send":
                self._send_data(message)
                if self.flow.write_paused:
                    await self.flow.drain()
            elif message_type == "websocket.close":
                code = message.get("code")
                reason = message.get("reason") or ""
                try:
                    self.protocol.send_close(
                        CloseCode.NORMAL_CLOSURE if code is None else code, reason
                    )
                except ProtocolError as exc:
                    raise RuntimeError(f"Invalid websocket.close message: {exc}") from None
                self._flush()
            else:
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got {message_type!r}."
                )
        elif self.disconnect is not None:
            raise ClientDisconnected(
                f"the WebSocket is closed (code {self.disconnect['code']}); "
                f"cannot send {message_type!r}"
            )
        else:
            raise RuntimeError(
                f"Unexpected ASGI message {message_type!r}: the app already closed the WebSocket."
            )

    async def _send_handshake_reply(self, message_type: str, message: Message) -> None:
        cycle = self.cycle
        if message_type == "websocket.accept":
            self._accept(message)
        elif message_type == "websocket.close":
            # ASGI spec 2.4: a close before accept rejects the handshake with 403.
            self.phase = _CLOSED
            cycle.send_error_response(403)
        elif message_type == "websocket.http.response.start":
            self.phase = _DENIAL
            await cycle.send({**message, "type": "http.response.start"})
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                f"'websocket.http.response.start', but got {message_type!r}."
            )

    def _accept(self, message: Message) -> None:
        """Write the 101 response (RFC 6455 §4.2.2) and start reading frames."""
        if self.disconnect is not None:
            raise ClientDisconnected("the client went away before the WebSocket was accepted")
        headers = list(self.handshake_headers)
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            if subprotocol not in self.scope["subprotocols"]:
                raise RuntimeError(
                    f"Subprotocol {subprotocol!r} was not offered by the client "
                    f"(RFC 6455 §4.2.2): {self.scope['subprotocols']!r}"
                )
            headers.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
        reserved = {name for name, _ in headers}
        for header in message.get("headers") or ():
            name, value = header
            check_response_header(name, value)
            if name.lower() in reserved:
                raise RuntimeError(f"The server sets the {name!r} header of a WebSocket handshake.")
            headers.append((name, value))
        own_names = frozenset(name.lower() for name, _ in headers)
        state = self.state
        self.transport.write(
            b"".join(
                (
                    status_line(101),
                    state.default_headers_except(own_names & state.default_header_names),
                    encode_headers(headers),
                    b"\r\n",
                )
            )
        )
        self.phase = _OPEN
        if state.access_log:
            log_access(self.scope, 101, perf_counter() - self.cycle.start_time)
        if self.settings.ping_interval is not None:
            self.ping_timer = state.loop.call_later(self.settings.ping_interval, self._send_ping)
        self.flow.resume_reading(PAUSED_FOR_BODY)
        early, self.early_bytes = bytes(self.early_bytes), bytearray()
        if early:
            self.data_received(early)

    def _send_data(self, message: MutableMapping[str, Any]) -> None:
        text = message.get("text")
        data = message.get("bytes")
        if text is not None and data is None:
            if not isinstance(text, str):
                raise RuntimeError(f"websocket.send 'text' must be str, got {type(text).__name__}.")
            self.protocol.send_text(text.encode("utf-8"))
        elif data is not None and text is None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise RuntimeError(
                    f"websocket.send 'bytes' must be bytes, got {type(data).__name__}."
                )
            self.protocol.send_binary(data)
        else:
            raise RuntimeError("websocket.send needs exactly one of 'text' and 'bytes'.")
        self._flush()

    # -- the server -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown: close with 1001 going away (RFC 6455 §7.4.1), and tell the app."""
        if self.phase == _HANDSHAKE:
            self.phase = _CLOSED
            self.cycle.send_error_response(503)
        elif self.phase == _OPEN:
            self._close(CloseCode.GOING_AWAY)
            # Read again even if the app's queue is full: the peer's answer must be seen.
            self.flow.resume_reading(PAUSED_FOR_BODY)
        self._set_disconnect(CloseCode.GOING_AWAY, "")

    def abort(self) -> None:
        self.transport.abort()

    def close_if_idle_since_before(self, deadline: float) -> None:
        """A WebSocket is never idle in the keep-alive sense; its pings watch the peer."""
