"""WebSockets (RFC 6455) over HTTP/1.1: the opening handshake, and the TCP connection as the
channel of a :class:`~hasten.protocols.websocket.connection.WebSocketConnection`.

HTTP/1.1 hands a request carrying ``Upgrade: websocket`` to :func:`upgrade_to_websocket`,
which checks the handshake (400, 426, or plain HTTP for what cannot be one) and gives the
transport to an :class:`H1WebSocket`, which runs the app.
"""

from __future__ import annotations

import asyncio
import functools
from time import perf_counter
from typing import TYPE_CHECKING, cast

from websockets.exceptions import InvalidHandshake
from websockets.http11 import Request

from hasten.asgi import Message, encode_headers, plain_response, status_line, websocket_scope
from hasten.logs import error_logger, log_access
from hasten.protocols.exchange import at_capacity
from hasten.protocols.flow import PAUSED_FOR_BODY, FlowControl, ReadingFollowsWriting
from hasten.protocols.websocket.connection import (
    WebSocketConnection,
    WebSocketSettings,
    handshake_protocol,
    negotiate_extensions,
    request_headers,
)
from hasten.state import ServerState, UpgradeHandler

if TYPE_CHECKING:
    from hasten.protocols.http1.connection import H1Connection, RequestCycle
    from hasten.protocols.websocket.permessage_deflate import PerMessageDeflate

# RFC 6455 §4.4: the version a 426 names as the one this server speaks.
_VERSION_REQUIRED = b"sec-websocket-version: 13\r\n"


def upgrade_handler(settings: WebSocketSettings) -> UpgradeHandler:
    """The handler HTTP/1.1 calls for ``Upgrade: websocket``."""
    return functools.partial(upgrade_to_websocket, settings)


def upgrade_to_websocket(
    settings: WebSocketSettings, conn: H1Connection, cycle: RequestCycle, rest: bytes
) -> bool:
    """Take over a connection whose request asks for a WebSocket (RFC 6455 §4.2.1).

    Returns False for a request that cannot open one at all, which is then answered as
    plain HTTP (RFC 9110 §7.8 lets a server ignore Upgrade); True once the connection is
    answered here: refused with 400/426/503, or handed to the app.
    """
    state = conn.state
    scope = cycle.scope
    if scope["method"] != "GET" or scope["http_version"] != "1.1":
        # RFC 6455 §4.1: the handshake is a GET over HTTP/1.1 or later; RFC 9110 §7.8:
        # Upgrade in an HTTP/1.0 request is ignored.
        return False
    if state.access_log:
        cycle.start_time = perf_counter()
    if not conn.can_switch_protocols():
        # Pipelined behind requests still being answered: refuse it after them, in order.
        conn.refuse_pipelined_upgrade(cycle, 400)
        return True
    versions = [value for name, value in scope["headers"] if name == b"sec-websocket-version"]
    if versions != [b"13"]:
        # RFC 6455 §4.2.2 item 4: 426 naming the version this server speaks.
        error_logger.debug("WebSocket handshake with version %r refused.", versions)
        conn.hand_over()
        conn.write(plain_response(426, extra_headers=_VERSION_REQUIRED))
        conn.close_transport()
        return True
    # The connection stops counting as an HTTP/1.1 one before the capacity check below;
    # whatever happens next, this request is its last.
    conn.hand_over()
    try:
        # websockets checks Connection, Upgrade and Sec-WebSocket-Key (RFC 6455 §4.2.1);
        # permessage-deflate is negotiated here, the subprotocol is the app's to choose.
        accept_key, _, _ = handshake_protocol().process_request(
            Request(scope["raw_path"].decode("latin-1"), request_headers(scope))
        )
        extensions_header, deflate = negotiate_extensions(settings, scope)
    except InvalidHandshake as exc:
        error_logger.debug("Invalid WebSocket handshake: %s", exc)
        cycle.send_error_response(400)
        return True
    if at_capacity(state):
        cycle.send_error_response(503)
        return True
    handshake = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept_key.encode("ascii")),
    ]
    if extensions_header is not None:
        handshake.append((b"sec-websocket-extensions", extensions_header))
    channel = H1WebSocket(state, settings, conn.flow, cycle, deflate, handshake)
    conn.hand_over_to(channel.take_over, rest)
    return True


class H1WebSocket(ReadingFollowsWriting, asyncio.Protocol):
    """A WebSocket on the TCP connection of the HTTP/1.1 request that opened it.

    It becomes the transport's protocol; until the app accepts, the request's cycle answers
    over HTTP, and once the WebSocket is over the connection closes (RFC 6455 §7.1.1).
    """

    __slots__ = ("cycle", "flow", "state", "transport", "websocket")

    def __init__(
        self,
        state: ServerState,
        settings: WebSocketSettings,
        flow: FlowControl,
        cycle: RequestCycle,
        deflate: PerMessageDeflate | None,
        handshake_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.state = state
        self.cycle = cycle
        # The HTTP/1.1 connection's: the HTTP cycle writes the denial response through it.
        self.flow = flow
        self.websocket = WebSocketConnection(
            state, settings, self, websocket_scope(cycle.scope), deflate, handshake_headers
        )

    def take_over(self, transport: asyncio.BaseTransport, rest: bytes) -> None:
        """Become the transport's protocol and start the app."""
        # uvloop's transports don't subclass asyncio.Transport, so no isinstance() here.
        self.transport = cast(asyncio.Transport, transport)
        transport.set_protocol(self)
        self.state.connections.add(self)
        if rest:
            self.data_received(rest)
        task = self.state.loop.create_task(
            self.websocket.run(), context=self.state.base_context.copy()
        )
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    # -- asyncio.Protocol -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.websocket.receive_data(data)

    def eof_received(self) -> bool:
        if self.websocket.is_open:
            self.websocket.receive_eof()
        else:
            self._peer_gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.flow.connection_lost()
        self._peer_gone()

    def _peer_gone(self) -> None:
        self.cycle.client_gone()
        self.websocket.peer_gone()

    # -- the WebSocket's channel ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def end(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def pause_reading(self) -> None:
        self.flow.pause_reading(PAUSED_FOR_BODY)

    def resume_reading(self) -> None:
        self.flow.resume_reading(PAUSED_FOR_BODY)

    @property
    def write_paused(self) -> bool:
        return self.flow.write_paused

    async def drain(self) -> None:
        await self.flow.drain()

    def refuse(self, status: int) -> None:
        self.cycle.send_error_response(status)

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        """The 101 response (RFC 6455 §4.2.2), with the server's default fields."""
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
        if state.access_log:
            log_access(self.websocket.scope, 101, perf_counter() - self.cycle.start_time)

    async def send_response(self, message: Message) -> None:
        await self.cycle.send(message)

    @property
    def response_complete(self) -> bool:
        return self.cycle.response_complete

    def fail_response(self) -> None:
        self.cycle.fail_response()

    # -- the server -------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.websocket.shutdown()

    def close_if_idle_since_before(self, deadline: float) -> None:
        """A WebSocket is never idle in the keep-alive sense; its pings watch the peer. A
        peer that reads nothing for ``timeout_response_write`` is dropped: the app's send()
        raises ClientDisconnected and its receive() returns the disconnect (1006)."""
        state = self.state
        if self.flow.write_stalled_for(state.timeout_response_write, state.loop.time()):
            error_logger.debug("WebSocket peer stopped reading; closing the connection.")
            self.transport.abort()
