"""WebSockets (RFC 6455) on the sans-I/O ``ServerProtocol`` of the websockets library: the
opening handshake.

HTTP/1.1 hands a request carrying ``Upgrade: websocket`` to :func:`upgrade_to_websocket`,
which checks the handshake (400, 426, or plain HTTP for what cannot be one) and gives the
transport to a :class:`~hasten.protocols.websocket_connection.WebSocketConnection`, which
runs the app.
"""

from __future__ import annotations

import functools
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from hasten.asgi import plain_response
from hasten.config import Config
from hasten.logs import error_logger
from hasten.protocols.websocket_connection import WebSocketConnection, WebSocketSettings
from hasten.state import ServerState, UpgradeHandler

if TYPE_CHECKING:
    from hasten.protocols.http1 import H1Connection, RequestCycle

# RFC 6455 §4.4: the version a 426 names as the one this server speaks.
_VERSION_REQUIRED = b"sec-websocket-version: 13\r\n"


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


def upgrade_handler(state: ServerState, config: Config) -> UpgradeHandler:
    """The handler HTTP/1.1 calls for ``Upgrade: websocket``."""
    return functools.partial(upgrade_to_websocket, state, WebSocketSettings.from_config(config))


def upgrade_to_websocket(
    state: ServerState,
    settings: WebSocketSettings,
    conn: H1Connection,
    cycle: RequestCycle,
    rest: bytes,
) -> bool:
    """Take over a connection whose request asks for a WebSocket (RFC 6455 §4.2.1).

    Returns False for a request that cannot open one at all, which is then answered as
    plain HTTP (RFC 9110 §7.8 lets a server ignore Upgrade); True once the connection is
    answered here: refused with 400/426/503, or handed to the app.
    """
    scope = cycle.scope
    if scope["method"] != "GET" or scope["http_version"] != "1.1":
        # RFC 6455 §4.1: the handshake is a GET over HTTP/1.1 or later; RFC 9110 §7.8:
        # Upgrade in an HTTP/1.0 request is ignored.
        return False
    if state.access_log:
        cycle.start_time = perf_counter()
    if conn.cycle is not None or len(conn.pipeline) != 1:
        # Pipelined behind requests still being answered: refuse it after them, in order
        # (the bytes after it cannot be HTTP, so the connection closes).
        conn.pipeline.remove(cycle)
        conn.body_cycle = None
        conn.reject(400)
        return True
    versions = [value for name, value in scope["headers"] if name == b"sec-websocket-version"]
    if versions != [b"13"]:
        # RFC 6455 §4.2.2 item 4: 426 naming the version this server speaks.
        error_logger.debug("WebSocket handshake with version %r refused.", versions)
        conn.hand_over()
        conn.transport.write(plain_response(426, extra_headers=_VERSION_REQUIRED))
        conn.close_transport()
        return True
    protocol = _ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()] if settings.per_message_deflate else None,
        state=OPEN,
        max_size=settings.max_size,
        logger=_protocol_logger,
    )
    headers = Headers(
        [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
    )
    conn.hand_over()
    try:
        # Checks Connection, Upgrade and Sec-WebSocket-Key (RFC 6455 §4.2.1) and
        # negotiates permessage-deflate; the subprotocol is the app's to choose.
        accept_key, extensions_header, _ = protocol.process_request(
            Request(scope["raw_path"].decode("latin-1"), headers)
        )
    except InvalidHandshake as exc:
        error_logger.debug("Invalid WebSocket handshake: %s", exc)
        cycle.send_error_response(400)
        return True
    if state.over_capacity():
        error_logger.warning("Exceeded concurrency limit; answering 503.")
        cycle.send_error_response(503)
        return True
    handshake = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept_key.encode("ascii")),
    ]
    if extensions_header is not None:
        handshake.append((b"sec-websocket-extensions", extensions_header.encode("ascii")))
    WebSocketConnection(state, settings, conn, cycle, protocol, handshake).take_over(rest)
    return True
