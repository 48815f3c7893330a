"""One accepted-or-pending WebSocket: ASGI messages to and from frames.

The app runs with a websocket scope. Until it accepts, the request's HTTP side remains the
way to answer over HTTP: 403 for a close before accept, 500 for a failure, or the app's own
response (the ``websocket.http.response`` denial extension). Once accepted, hasten's own
``frames`` reads the client's frames as messages (masking, fragmentation, control frames,
UTF-8, close codes, permessage-deflate, size limits) and writes the app's, and this module
runs the closing handshake and moves messages between the frames and the app, with
backpressure both ways. The websockets library checks the opening handshake only.

What carries the WebSocket is a :class:`WebSocketChannel`: a TCP connection taken over
from HTTP/1.1 (``handshake.py``, RFC 6455) or an HTTP/2 stream opened by an extended
CONNECT (``over_http2.py``, RFC 8441). This module never touches either directly.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.datastructures import Headers
from websockets.server import ServerProtocol

from hasten.asgi import ClientDisconnected, Message, Scope, check_response_header
from hasten.logs import error_logger
from hasten.protocols.flow import READ_HIGH_WATER
from hasten.protocols.websocket import frames
from hasten.protocols.websocket.frames import (
    ABNORMAL_CLOSURE,
    GOING_AWAY,
    INTERNAL_ERROR,
    NO_STATUS_RECEIVED,
    NORMAL_CLOSURE,
    FrameReader,
    ProtocolViolation,
)
from hasten.protocols.websocket.permessage_deflate import PerMessageDeflate, negotiate
from hasten.state import ServerState

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
    """The ``ws_*`` settings, read once per server (``settings_view(WebSocketSettings,
    config)``)."""

    ws_max_size: int
    ws_max_queue: int
    ws_max_queue_bytes: int
    ws_max_fragments: int
    ws_ping_interval: float | None
    ws_ping_timeout: float | None
    ws_per_message_deflate: bool


class _QuietLogger(logging.LoggerAdapter[logging.Logger]):
    """websockets logs every connection's open and close at INFO; that's debug detail here."""

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


_protocol_logger = _QuietLogger(error_logger, {})


def handshake_protocol() -> ServerProtocol:
    """websockets' server side, for the opening handshake only: the frames are hasten's."""
    return ServerProtocol(logger=_protocol_logger)


def negotiate_extensions(
    settings: WebSocketSettings, scope: Scope
) -> tuple[bytes | None, PerMessageDeflate | None]:
    """The ``Sec-WebSocket-Extensions`` answer and the permessage-deflate it agrees to, if
    the setting allows it and the client offers one the server can take. Raises websockets'
    InvalidHandshake for a malformed field."""
    if not settings.ws_per_message_deflate:
        return None, None
    offers = [
        value.decode("latin-1")
        for name, value in scope["headers"]
        if name == b"sec-websocket-extensions"
    ]
    agreed = negotiate(offers) if offers else None
    if agreed is None:
        return None, None
    return agreed[0].encode("ascii"), agreed[1]


def request_headers(scope: Scope) -> Headers:
    """The request's fields as websockets reads them."""
    return Headers(
        [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
    )


class WebSocketChannel(Protocol):
    """What a WebSocket needs of whatever carries it, a TCP connection or an HTTP/2 stream.

    Until the app accepts, the channel is an HTTP request: it answers with an error status
    (``refuse``), the handshake response (``accept``) or the app's own response
    (``send_response``). Then it carries frames, with backpressure both ways.
    """

    def write(self, data: bytes) -> None:
        """Send frame bytes."""

    def end(self) -> None:
        """End cleanly: the closing handshake is over, or the denial response complete."""

    def abort(self) -> None:
        """End abruptly, dropping whatever is still unsent."""

    def is_closing(self) -> bool:
        """Whether the channel is ending or over: nothing more can be sent."""

    def pause_reading(self) -> None:
        """Stop taking frames from the peer: the app lags behind."""

    def resume_reading(self) -> None:
        """Take frames again."""

    @property
    def write_paused(self) -> bool:
        """Whether the peer lags behind what it was sent."""

    async def drain(self) -> None:
        """Wait until the peer has taken enough of what it was sent."""

    def refuse(self, status: int) -> None:
        """Answer the handshake request with a short error response, and end."""

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Answer the handshake request with success and these fields: frames follow."""

    async def send_response(self, message: Message) -> None:
        """Send an ``http.response.*`` message of the app's own answer to the request."""

    @property
    def response_complete(self) -> bool:
        """Whether the app's own response has been sent entirely."""

    def fail_response(self) -> None:
        """The app's own response went wrong: 500 if none of it was sent, else abort."""


class WebSocketConnection:
    """One WebSocket: the client's frames in as ASGI messages, the app's messages out as
    frames.

    Incoming messages queue in ``incoming`` for the app's ``receive()``; once
    ``ws_max_queue`` messages or ``ws_max_queue_bytes`` bytes are waiting, the bytes still
    arriving stay unparsed in the reader (so not decompressed either) and the channel
    stops reading, until the app takes enough. The app's ``send()`` waits while the peer
    does not read what it was sent.
    """

    __slots__ = (
        "channel",
        "close_sent",
        "close_sent_code",
        "close_timer",
        "connect_delivered",
        "deflate",
        "disconnect",
        "early_bytes",
        "handshake_headers",
        "incoming",
        "incoming_sizes",
        "phase",
        "ping_timer",
        "pong_timer",
        "queued_bytes",
        "reader",
        "scope",
        "settings",
        "state",
        "waiter",
    )

    def __init__(
        self,
        state: ServerState,
        settings: WebSocketSettings,
        channel: WebSocketChannel,
        scope: Scope,
        deflate: PerMessageDeflate | None,
        handshake_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.state = state
        self.settings = settings
        self.channel = channel
        self.scope = scope
        self.deflate = deflate
        self.reader = FrameReader(settings.ws_max_size, settings.ws_max_fragments, deflate)
        self.handshake_headers = handshake_headers
        self.phase = _HANDSHAKE
        self.connect_delivered = False
        self.incoming: deque[Message] = deque()
        # The payload size of each queued message, and their sum.
        self.incoming_sizes: deque[int] = deque()
        self.queued_bytes = 0
        self.disconnect: Message | None = None
        self.waiter: asyncio.Future[None] | None = None
        # Bytes the client sent before it was answered (RFC 6455 §4.1 says it must not);
        # they are read as frames once the app accepts.
        self.early_bytes = bytearray()
        # Once the server has sent its close frame it sends nothing more (RFC 6455 §5.5.1).
        self.close_sent = False
        self.close_sent_code = ABNORMAL_CLOSURE
        self.ping_timer: asyncio.TimerHandle | None = None
        self.pong_timer: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None

    @property
    def is_open(self) -> bool:
        """Whether the app accepted and frames flow."""
        return self.phase == _OPEN

    # -- the channel ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer."""
        if self.phase == _HANDSHAKE:
            self.early_bytes += data
            if len(self.early_bytes) > READ_HIGH_WATER:
                self.channel.pause_reading()
            return
        if self.phase != _OPEN:
            return
        self.reader.feed(data)
        self._read_frames()

    def _queue_full(self) -> bool:
        return self.disconnect is None and (
            self.queued_bytes >= self.settings.ws_max_queue_bytes
            or len(self.incoming) >= self.settings.ws_max_queue
        )

    def _read_frames(self) -> None:
        """Take messages and control frames from the reader while the queue has room;
        what is left when it fills stays unparsed, and the channel stops reading."""
        reader = self.reader
        while self.phase == _OPEN:
            if self._queue_full():
                if reader.buffered:
                    self.channel.pause_reading()
                return
            try:
                opcode = reader.next_event()
            except ProtocolViolation as violation:
                self._fail(violation.code, violation.reason)
                return
            if opcode == frames.NOTHING:
                return
            if opcode == frames.TEXT:
                text = reader.text
                self._queue({"type": "websocket.receive", "text": text}, len(text))
            elif opcode == frames.BINARY:
                data = reader.data
                self._queue({"type": "websocket.receive", "bytes": data}, len(data))
            elif opcode == frames.PING:
                # RFC 6455 §5.5.2: a ping is answered with a pong carrying its payload.
                self._write_control(frames.PONG, reader.data)
            elif opcode == frames.PONG:
                if self.pong_timer is not None:
                    self.pong_timer.cancel()
                    self.pong_timer = None
            else:
                self._close_received(reader.close_code, reader.close_reason)

    def _read_unread(self) -> None:
        """The app made room in the queue: parse what was held, then read the channel again
        if that left room."""
        if self.reader.buffered:
            self._read_frames()
        if not self._queue_full():
            self.channel.resume_reading()

    def receive_eof(self) -> None:
        """The peer will send nothing more (an open WebSocket's peer ends after its close)."""
        if not self.reader.done:
            # No close frame came: the connection closed abnormally (RFC 6455 §7.1.5), and
            # the server closes its side too.
            self._set_disconnect(self.close_sent_code if self.close_sent else ABNORMAL_CLOSURE, "")
            self.close_sent = True
            self.channel.end()

    def peer_gone(self) -> None:
        """The channel is over: whatever was not closed cleanly closed with 1006."""
        for timer in (self.ping_timer, self.pong_timer, self.close_timer):
            if timer is not None:
                timer.cancel()
        self._set_disconnect(ABNORMAL_CLOSURE, "")
        if self.phase != _DENIAL:
            self.phase = _CLOSED

    # -- the closing handshake (RFC 6455 §7) ------------------------------------------------

    def _close_received(self, code: int, reason: str) -> None:
        """The peer's close frame: answer it unless it answers ours, then end the channel
        (§7.1.1: the server closes the TCP connection first; RFC 8441 §6: over HTTP/2,
        END_STREAM stands for that close)."""
        if not self.close_sent:
            # §5.5.1: the answer echoes the code (none if the peer sent none).
            echo = b"" if code == NO_STATUS_RECEIVED else frames.close_payload(code, "")
            self._send_close_frame(echo)
        self._set_disconnect(code, reason)
        self.channel.end()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (§7.1.7): close with ``code``, then end the channel."""
        error_logger.debug("WebSocket peer broke the protocol (%d): %s", code, reason)
        if not self.close_sent:
            self._send_close_frame(frames.close_payload(code, reason))
        self._set_disconnect(code, reason)
        self.channel.end()

    def _close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake, unless one is under way."""
        if not self.close_sent and not self.channel.is_closing():
            self._send_close_frame(frames.close_payload(code, reason))

    def _send_close_frame(self, payload: bytes) -> None:
        self.close_sent = True
        self.close_sent_code = (payload[0] << 8) | payload[1] if payload else NO_STATUS_RECEIVED
        self.channel.write(frames.control_frame(frames.CLOSE, payload))
        timeout = self.settings.ws_ping_timeout
        if self.close_timer is None and timeout is not None:
            # The peer must answer our close frame, and take what is left to send, in time
            # (§7.1.1); a closing channel may still wait on it.
            self.close_timer = self.state.loop.call_later(timeout, self.channel.abort)

    def _write_control(self, opcode: int, payload: bytes) -> None:
        if not self.close_sent:
            self.channel.write(frames.control_frame(opcode, payload))

    def _queue(self, message: Message, size: int) -> None:
        """Hand a message of ``size`` payload bytes to the app's ``receive()``; a full queue
        stops the reading."""
        if self.disconnect is None:
            # Once the app has been told the connection is over, nothing is queued.
            self.incoming.append(message)
            self.incoming_sizes.append(size)
            self.queued_bytes += size
            if self._queue_full():
                self.channel.pause_reading()
            self._wake()

    def _set_disconnect(self, code: int, reason: str) -> None:
        if self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._wake()

    # -- keepalive --------------------------------------------------------------------------

    def _send_ping(self) -> None:
        """Keepalive: ping, and give up on a peer that doesn't pong in time."""
        interval = self.settings.ws_ping_interval
        assert interval is not None
        self.ping_timer = self.state.loop.call_later(interval, self._send_ping)
        if self.close_sent or self.pong_timer is not None:
            return
        self._write_control(frames.PING, os.urandom(_PING_PAYLOAD_SIZE))
        timeout = self.settings.ws_ping_timeout
        if timeout is not None:
            self.pong_timer = self.state.loop.call_later(timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        error_logger.debug("WebSocket peer did not answer a ping in time; closing.")
        self.pong_timer = None
        self._set_disconnect(ABNORMAL_CLOSURE, "")
        self.channel.abort()

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
            self.channel.refuse(500)
        elif self.phase == _DENIAL and not self.channel.response_complete:
            error_logger.error("ASGI callable returned without completing the response.")
            self.channel.fail_response()
        elif self.phase == _OPEN:
            self._close(NORMAL_CLOSURE)

    def _stop_queueing(self) -> None:
        """The app is done: what else arrives is not queued, and the peer is read again
        so that its close frame is seen."""
        self._set_disconnect(ABNORMAL_CLOSURE, "")
        self.incoming.clear()
        self.incoming_sizes.clear()
        self.queued_bytes = 0
        self._read_unread()

    def _app_failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self.channel.abort()
            return
        if self.disconnect is not None and isinstance(exc, ClientDisconnected):
            error_logger.debug("WebSocket closed while the app was sending.")
            return
        error_logger.error("Exception in ASGI application", exc_info=exc)
        if self.phase == _HANDSHAKE:
            self.phase = _CLOSED
            self.channel.refuse(500)
        elif self.phase == _DENIAL:
            self.channel.fail_response()
        else:
            # RFC 6455 §7.4.1: 1011, the server hit an unexpected condition.
            self._close(INTERNAL_ERROR)

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
            self.queued_bytes -= self.incoming_sizes.popleft()
            if not self._queue_full():
                self._read_unread()
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
            await self.channel.send_response({**message, "type": "http.response.body"})
            if self.channel.response_complete:
                self.phase = _CLOSED
                self.channel.end()
        elif self.phase == _OPEN and not self.close_sent:
            if message_type == "websocket.send":
                self._send_data(message)
                if self.channel.write_paused:
                    await self.channel.drain()
            elif message_type == "websocket.close":
                code = message.get("code")
                reason = message.get("reason") or ""
                try:
                    payload = frames.close_payload(NORMAL_CLOSURE if code is None else code, reason)
                except ValueError as exc:
                    raise RuntimeError(f"Invalid websocket.close message: {exc}") from None
                self._send_close_frame(payload)
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
        if message_type == "websocket.accept":
            self._accept(message)
        elif message_type == "websocket.close":
            # ASGI spec 2.4: a close before accept rejects the handshake with 403.
            self.phase = _CLOSED
            self.channel.refuse(403)
        elif message_type == "websocket.http.response.start":
            self.phase = _DENIAL
            await self.channel.send_response({**message, "type": "http.response.start"})
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                f"'websocket.http.response.start', but got {message_type!r}."
            )

    def _accept(self, message: Message) -> None:
        """Answer the handshake (RFC 6455 §4.2.2, RFC 8441 §5) and start reading frames."""
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
        self.channel.accept(headers)
        self.phase = _OPEN
        if self.settings.ws_ping_interval is not None:
            self.ping_timer = self.state.loop.call_later(
                self.settings.ws_ping_interval, self._send_ping
            )
        # The early bytes are read before anything that arrives after them.
        early, self.early_bytes = bytes(self.early_bytes), bytearray()
        if early:
            self.receive_data(early)
        if not self._queue_full():
            self._read_unread()

    def _send_data(self, message: MutableMapping[str, Any]) -> None:
        text = message.get("text")
        data = message.get("bytes")
        if text is not None and data is None:
            if not isinstance(text, str):
                raise RuntimeError(f"websocket.send 'text' must be str, got {type(text).__name__}.")
            self._write_message(frames.TEXT, text.encode("utf-8"))
        elif data is not None and text is None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise RuntimeError(
                    f"websocket.send 'bytes' must be bytes, got {type(data).__name__}."
                )
            self._write_message(frames.BINARY, bytes(data))
        else:
            raise RuntimeError("websocket.send needs exactly one of 'text' and 'bytes'.")

    def _write_message(self, opcode: int, payload: bytes) -> None:
        deflate = self.deflate
        if deflate is None:
            self.channel.write(frames.data_frame(opcode, payload))
        else:
            self.channel.write(frames.data_frame(opcode, deflate.deflate(payload), compressed=True))

    # -- the server -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown: close with 1001 going away (RFC 6455 §7.4.1), and tell the app."""
        if self.phase == _HANDSHAKE:
            self.phase = _CLOSED
            self.channel.refuse(503)
        elif self.phase == _OPEN:
            self._close(GOING_AWAY)
        self._set_disconnect(GOING_AWAY, "")
        if self.phase == _OPEN:
            # Read again even if the app's queue is full: the peer's answer must be seen
            # (nothing more is queued once the app has been told).
            self._read_unread()
