"""One accepted-or-pending WebSocket: ASGI messages to and from websockets' frames.

The app runs with a websocket scope. Until it accepts, the request's HTTP side remains the
way to answer over HTTP: 403 for a close before accept, 500 for a failure, or the app's own
response (the ``websocket.http.response`` denial extension). Once accepted, websockets
parses and serialises frames (masking, fragmentation, control frames, close codes,
permessage-deflate, size limits) and this module moves messages between it and the app,
with backpressure both ways.

What carries the WebSocket is a :class:`WebSocketChannel`: a TCP connection taken over
from HTTP/1.1 (``handshake.py``, RFC 6455) or an HTTP/2 stream opened by an extended
CONNECT (``over_http2.py``, RFC 8441). This module never touches either directly.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
from collections import deque
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

from websockets.datastructures import Headers
from websockets.exceptions import ProtocolError
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from hasten.asgi import ClientDisconnected, Message, Scope, check_response_header
from hasten.logs import error_logger
from hasten.protocols.flow import READ_HIGH_WATER
from hasten.state import ServerState

# The only thing that matters in a ping's payload is that pongs to older pings don't match.
_PING_PAYLOAD_SIZE = 4
# websockets' own serve() defaults for permessage-deflate (RFC 7692): 4 KiB windows both
# ways and memLevel 5, about 21 KiB of zlib state per connection instead of 87 KiB at zlib's
# defaults. Factories hold no per-connection state: one list serves every connection.
_DEFLATE: Final = enable_server_permessage_deflate(None)
# Deflate's largest expansion (zlib technical details: 1032:1). Compressed input is handed to
# websockets in slices that cannot inflate past the room left in the queue...
_DEFLATE_MAX_RATIO: Final = 1032
# ...but never smaller than this, which bounds the overshoot to about 1 MiB.
_MIN_COMPRESSED_SLICE: Final = 1024

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


class _ServerProtocol(ServerProtocol):
    """websockets' server side, with a close frame allowed between fragments."""

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            # RFC 6455 §5.4: control frames may come between the fragments of a message;
            # a close there ends the connection cleanly, and the unfinished message with
            # it (websockets would fail the connection with 1002).
            self.current_size = None
        super().recv_frame(frame)


def frame_protocol(settings: WebSocketSettings) -> ServerProtocol:
    """websockets' sans-I/O server side, already open: the handshake is the caller's."""
    return _ServerProtocol(
        extensions=_DEFLATE if settings.ws_per_message_deflate else None,
        state=OPEN,
        max_size=settings.ws_max_size,
        logger=_protocol_logger,
    )


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
    """One WebSocket: frames from websockets' ``ServerProtocol`` in, ASGI messages out.

    Incoming messages queue in ``incoming`` for the app's ``receive()``; once
    ``ws_max_queue`` messages or ``ws_max_queue_bytes`` bytes are waiting, the bytes still
    arriving are held unparsed in ``unread`` (so not decompressed either) and the channel
    stops reading, until the app takes enough. The app's ``send()`` waits
    while the peer does not read what it was sent.
    """

    __slots__ = (
        "channel",
        "close_timer",
        "connect_delivered",
        "disconnect",
        "early_bytes",
        "handshake_headers",
        "incoming",
        "incoming_sizes",
        "message_parts",
        "phase",
        "ping_timer",
        "pong_timer",
        "protocol",
        "queued_bytes",
        "scope",
        "settings",
        "state",
        "text_decoder",
        "unread",
        "waiter",
    )

    def __init__(
        self,
        state: ServerState,
        settings: WebSocketSettings,
        channel: WebSocketChannel,
        scope: Scope,
        protocol: ServerProtocol,
        handshake_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.state = state
        self.settings = settings
        self.channel = channel
        self.scope = scope
        self.protocol = protocol
        self.handshake_headers = handshake_headers
        self.phase = _HANDSHAKE
        self.connect_delivered = False
        self.incoming: deque[Message] = deque()
        # The payload size of each queued message, and their sum.
        self.incoming_sizes: deque[int] = deque()
        self.queued_bytes = 0
        # Bytes from the peer held back, unparsed, while the queue is full.
        self.unread = bytearray()
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
        if self.unread or self._queue_full():
            self.unread += data
            self.channel.pause_reading()
            return
        self._parse(data)

    def _queue_full(self) -> bool:
        return self.disconnect is None and (
            self.queued_bytes >= self.settings.ws_max_queue_bytes
            or len(self.incoming) >= self.settings.ws_max_queue
        )

    def _parse(self, data: bytes) -> None:
        """Hand ``data`` to websockets in slices the queue has room for; what is left when it
        fills waits in ``unread``, and the channel stops reading."""
        protocol = self.protocol
        while data and self.phase == _OPEN:
            if self._queue_full():
                self.unread += data
                self.channel.pause_reading()
                return
            room = self.settings.ws_max_queue_bytes - self.queued_bytes
            if protocol.extensions:
                # permessage-deflate: a few bytes can become a whole message.
                room = max(room // _DEFLATE_MAX_RATIO, _MIN_COMPRESSED_SLICE)
            if len(data) <= room:
                chunk, data = data, b""
            else:
                chunk, data = data[:room], data[room:]
            protocol.receive_data(chunk)
            self._handle_events()

    def _read_unread(self) -> None:
        """The app made room in the queue: parse what was held, then read the channel again
        if that left room."""
        if self.unread:
            data = bytes(self.unread)
            self.unread.clear()
            self._parse(data)
        if not self.unread and not self._queue_full():
            self.channel.resume_reading()

    def receive_eof(self) -> None:
        """The peer will send nothing more (an open WebSocket's peer ends after its close)."""
        self.protocol.receive_eof()
        self._handle_events()

    def peer_gone(self) -> None:
        """The channel is over: whatever was not closed cleanly closed with 1006."""
        for timer in (self.ping_timer, self.pong_timer, self.close_timer):
            if timer is not None:
                timer.cancel()
        self._set_disconnect(CloseCode.ABNORMAL_CLOSURE, "")
        if self.phase != _DENIAL:
            self.phase = _CLOSED

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
                size = len(frame.data)
                if opcode is Opcode.TEXT:
                    text = str(frame.data, "utf-8")
                    self._queue({"type": "websocket.receive", "text": text}, size)
                else:
                    self._queue({"type": "websocket.receive", "bytes": bytes(frame.data)}, size)
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
        parts = self.message_parts
        parts.append(part)
        if frame.fin:
            self.message_parts = []
            if decoder is None:
                data = b"".join(parts)
                self._queue({"type": "websocket.receive", "bytes": data}, len(data))
            else:
                text = "".join(parts)
                self._queue({"type": "websocket.receive", "text": text}, len(text))
        elif len(parts) >= self.settings.ws_max_fragments:
            # RFC 6455 §5.4 puts no limit on fragments, but each is kept until the message
            # ends, and empty ones add nothing to websockets' size count: past the limit the
            # message is "too big to process" (§7.4.1's 1009).
            self.protocol.fail(CloseCode.MESSAGE_TOO_BIG, "too many fragments")
            self._set_disconnect(CloseCode.MESSAGE_TOO_BIG, "")
            return False
        return True

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

    # -- frames out -------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what websockets has to send; its end-of-stream marker ends the channel."""
        channel = self.channel
        for data in self.protocol.data_to_send():
            if data:
                channel.write(data)
            else:
                # RFC 6455 §7.1.1: the server closes the TCP connection first; RFC 8441 §6:
                # over HTTP/2, END_STREAM stands for that close.
                channel.end()
        if self.close_timer is None and self.protocol.close_expected():
            timeout = self.settings.ws_ping_timeout
            if timeout is not None:
                # The peer must answer our close frame, and take what is left to send,
                # in time (RFC 6455 §7.1.1); a closing channel may still wait on it.
                self.close_timer = self.state.loop.call_later(timeout, channel.abort)

    def _send_ping(self) -> None:
        """Keepalive: ping, and give up on a peer that doesn't pong in time."""
        interval = self.settings.ws_ping_interval
        assert interval is not None
        self.ping_timer = self.state.loop.call_later(interval, self._send_ping)
        if self.protocol.state is not OPEN or self.pong_timer is not None:
            return
        self.protocol.send_ping(os.urandom(_PING_PAYLOAD_SIZE))
        self._flush()
        timeout = self.settings.ws_ping_timeout
        if timeout is not None:
            self.pong_timer = self.state.loop.call_later(timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        error_logger.debug("WebSocket peer did not answer a ping in time; closing.")
        self.pong_timer = None
        self._set_disconnect(CloseCode.ABNORMAL_CLOSURE, "")
        self.channel.abort()

    def _close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake, unless one is under way."""
        if self.protocol.state is OPEN and not self.channel.is_closing():
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
            self.channel.refuse(500)
        elif self.phase == _DENIAL and not self.channel.response_complete:
            error_logger.error("ASGI callable returned without completing the response.")
            self.channel.fail_response()
        elif self.phase == _OPEN:
            self._close(CloseCode.NORMAL_CLOSURE)

    def _stop_queueing(self) -> None:
        """The app is done: what else arrives is not queued, and the peer is read again
        so that its close frame is seen."""
        self._set_disconnect(CloseCode.ABNORMAL_CLOSURE, "")
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
        elif self.phase == _OPEN and self.protocol.state is OPEN:
            if message_type == "websocket.send":
                self._send_data(message)
                if self.channel.write_paused:
                    await self.channel.drain()
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
            self.channel.refuse(503)
        elif self.phase == _OPEN:
            self._close(CloseCode.GOING_AWAY)
        self._set_disconnect(CloseCode.GOING_AWAY, "")
        if self.phase == _OPEN:
            # Read again even if the app's queue is full: the peer's answer must be seen
            # (nothing more is queued once the app has been told).
            self._read_unread()
