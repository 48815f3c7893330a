"""One HTTP/2 stream as an ASGI http request: the wire side of an ``Exchange``.

Request body bytes are handed back to the client's flow-control window only as the app
takes them, so a slow app slows its own stream and no other. Response data waits for the
client's window (RFC 9113 §5.2), and trailers and 103 Early Hints travel as extra header
blocks on the stream (§8.1).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, Protocol

from hasten.asgi import (
    PLAIN_RESPONSE_CONTENT_TYPE,
    ClientDisconnected,
    check_response_status,
    plain_response_body,
)
from hasten.protocols.exchange import (
    KNOWN_RESPONSE_HEADERS,
    NO_BODY_STATUSES,
    Exchange,
    response_header,
)
from hasten.protocols.http2.frames import ErrorCode
from hasten.protocols.http2.machine import StreamClosedError

if TYPE_CHECKING:
    import asyncio

    from hasten.protocols.http2.connection import H2Connection

Headers = list[tuple[bytes, bytes]]
# The :status field of every final status (check_response_status allows no other), made once.
_STATUS_FIELDS: Final = {status: (b":status", b"%d" % status) for status in range(200, 600)}


class StreamHandler(Protocol):
    """What a connection needs of whatever one of its streams carries: a request and its
    app (``H2Stream``), or a WebSocket (``websocket.over_http2.H2WebSocketStream``)."""

    task: asyncio.Task[None] | None
    # Body bytes taken from the stream but not yet given back to the client's window.
    unacknowledged: int

    @property
    def stream_id(self) -> int: ...

    @property
    def received_length(self) -> int:
        """Body bytes received, for ``--limit-request-body``."""

    @property
    def disconnected(self) -> bool: ...

    @property
    def response_complete(self) -> bool: ...

    async def run(self) -> None:
        """Run the app: the stream's task."""

    def cancel(self) -> None:
        """The client no longer wants the answer, or has gone: stop the app if it should."""

    def shutdown(self) -> None:
        """The server shuts down gracefully."""

    def feed_body(self, data: bytes, flow_controlled_length: int) -> None:
        """DATA from the client."""

    def end_body(self) -> None:
        """The client ended its side of the stream."""

    def refuse_body(self) -> None:
        """The body outgrew ``--limit-request-body``."""

    def window_opened(self) -> None:
        """The client opened the stream's window, or the connection's."""

    def stalled_since(self) -> float | None:
        """When the stream last progressed, if it is waiting on the client now."""

    def client_gone(self) -> None:
        """The stream was reset or the connection lost."""


class H2Stream(Exchange):
    """One request and its response on an HTTP/2 connection."""

    __slots__ = (
        "conn",
        "head",
        "progress_at",
        "received_length",
        "stream_id",
        "trailers",
        "unacknowledged",
        "waiting_for_window",
    )

    def __init__(self, conn: H2Connection, stream_id: int, scope: dict[str, Any]) -> None:
        super().__init__(conn.state, conn.flow, scope)
        self.conn = conn
        self.stream_id = stream_id
        self.unacknowledged = 0
        self.received_length = 0
        # When the stream last made progress, for the stall timeout (stalled_since).
        self.progress_at = conn.state.loop.time()
        self.waiting_for_window = False
        self.head: Headers | None = None
        self.trailers: Headers = []
        self.status = 0
        self.declared_length: int | None = None
        self.start_time = perf_counter()

    # -- the app's answer -------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the app: the client no longer wants the answer, or has gone."""
        task = self.task
        if task is None or task.done():
            return
        task.cancel()
        if not self.app_started:
            # Cancelled before its first step, the coroutine never runs, nor its finally.
            self.conn.app_finished(self)

    def app_done(self) -> None:
        self.conn.app_finished(self)

    def fail_response(self) -> None:
        """500 if nothing was sent yet, else reset the stream (RFC 9113 §8.1)."""
        if self.disconnected or self.response_complete:
            return
        if self.head is not None or not self.response_started:
            self.send_error_response(500)
        else:
            self.abort()

    def abort(self) -> None:
        if not self.disconnected and not self.response_complete:
            self.response_complete = True
            self.conn.reset_stream(self.stream_id, ErrorCode.INTERNAL_ERROR)
            self.disconnected = True

    def send_error_response(
        self, status: int, extra_fields: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        """Answer with a short, fixed error response; ``extra_fields`` are fields the status
        calls for."""
        body = b"" if self.is_head else plain_response_body(status)
        self.status = status
        self.response_started = True
        self.head = [
            _STATUS_FIELDS[status],
            *self.conn.default_headers(None),
            (b"content-type", PLAIN_RESPONSE_CONTENT_TYPE),
            (b"content-length", b"%d" % len(plain_response_body(status))),
            *extra_fields,
        ]
        self.declared_length = None
        self.wants_trailers = False
        try:
            self.send_head(end_stream=not body)
            if body:
                self.conn.h2.send_data(self.stream_id, body, True)
        except StreamClosedError:
            self.disconnected = True
        self.conn.flush()
        self.body_finished = True
        self.response_done()

    def body_taken(self, more_body: bool) -> None:
        if self.unacknowledged:
            self.conn.acknowledge(self.stream_id, self.unacknowledged)
            self.unacknowledged = 0

    def wait_started(self) -> None:
        self.progress_at = self.conn.state.loop.time()

    def response_finished(self) -> None:
        self.conn.response_finished(self)

    # -- serialisation ----------------------------------------------------------------------

    def start_response(self, fields: dict[str, Any]) -> None:
        status = check_response_status(fields.get("status"))
        head: Headers = [_STATUS_FIELDS[status]]
        default_names = self.state.default_header_names
        overridden: set[bytes] | None = None
        # Nothing is stored on the stream until every header passed its checks, so an app
        # that catches the RuntimeError and starts again begins afresh.
        declared_length: int | None = None
        for header in fields.get("headers", ()):
            try:
                lowered, _, framing, field = KNOWN_RESPONSE_HEADERS[header]
            except (KeyError, TypeError):  # new, or a list (unhashable)
                lowered, _, framing, field = response_header(header)
            if field is None:
                continue
            if framing:  # content-length: the others are connection-specific
                if declared_length is not None:
                    raise RuntimeError("More than one response Content-Length header.")
                declared_length = int(field[1])
            elif lowered in default_names:
                if overridden is None:
                    overridden = set()
                overridden.add(lowered)
            head.append(field)
        head[1:1] = self.conn.default_headers(overridden)
        self.status = status
        self.declared_length = declared_length
        self.head = head
        self.response_headers = head
        self.wants_trailers = bool(fields.get("trailers", False))
        self.response_started = True

    def send_head(self, end_stream: bool) -> None:
        head = self.head
        assert head is not None
        self.head = None
        self.conn.h2.send_headers(self.stream_id, head, end_stream)

    def send_body(self, body: bytes, more_body: bool) -> Awaitable[None] | None:
        if self.is_head or self.status in NO_BODY_STATUSES:
            body = b""
        declared = self.declared_length
        self.body_bytes_sent += len(body)
        if declared is not None and self.status not in NO_BODY_STATUSES and not self.is_head:
            # RFC 9113 §8.1.1: a body that doesn't match its content-length is malformed;
            # the app's mistake must not reach the client as a complete response.
            if self.body_bytes_sent > declared:
                raise RuntimeError("Response content is longer than its Content-Length.")
            if not more_body and self.body_bytes_sent < declared:
                raise RuntimeError("Response content is shorter than its Content-Length.")
        end_stream = not more_body and not self.wants_trailers
        try:
            if self.head is not None and not body:
                self.send_head(end_stream)
                self.conn.flush_soon()
                return None
            if self.head is not None:
                self.send_head(end_stream=False)
            if body or end_stream:
                rest = self._send_frames(body, end_stream)
                if rest is not None:
                    return self._send_when_window_opens(rest, end_stream)
        except StreamClosedError:
            # The stream or the connection was closed under the app (reset, GOAWAY).
            self.disconnected = True
            raise ClientDisconnected("the client disconnected") from None
        return None

    def _send_frames(self, data: bytes, end_stream: bool) -> bytes | None:
        """Send ``data`` as DATA frames as far as the client's flow-control window allows:
        what is left for when it opens, or None once everything is sent."""
        machine = self.conn.h2
        stream_id = self.stream_id
        if len(data) <= machine.send_window(stream_id) and len(data) <= (
            machine.max_outbound_frame_size
        ):
            self.send_frame(data, end_stream)
            self.conn.flush_soon()
            return None
        # Frames are cut at an offset: slicing off what is left each time would copy it.
        sent = 0
        while sent < len(data):
            size = min(machine.send_window(stream_id), machine.max_outbound_frame_size)
            if size <= 0:
                self.conn.flush()
                return data[sent:]
            chunk = data[sent : sent + size]
            sent += len(chunk)
            self.send_frame(chunk, end_stream and sent == len(data))
        self.conn.flush_soon()
        return None

    async def _send_when_window_opens(self, data: bytes, end_stream: bool) -> None:
        """Send the rest of a body chunk as the client opens its window."""
        rest: bytes | None = data
        while rest is not None:
            self.waiting_for_window = True
            # The stall clock starts now, even if a receive() was already waiting.
            self.progress_at = self.conn.state.loop.time()
            try:
                await self._wait()
            finally:
                self.waiting_for_window = False
            if self.disconnected:
                raise ClientDisconnected("the client disconnected")
            try:
                rest = self._send_frames(rest, end_stream)
            except StreamClosedError:
                self.disconnected = True
                raise ClientDisconnected("the client disconnected") from None

    def send_frame(self, chunk: bytes, end_stream: bool) -> None:
        """One DATA frame, which the windows have room for."""
        conn = self.conn
        conn.h2.send_data(self.stream_id, chunk, end_stream)
        self.progress_at = conn.state.loop.time()

    def send_trailers(self, fields: dict[str, Any]) -> bool:
        for header in fields.get("headers", ()):
            field = response_header(header)[3]
            if field is not None:
                self.trailers.append(field)
        if fields.get("more_trailers", False):
            return False
        try:
            if self.trailers:
                self.conn.h2.send_headers(self.stream_id, self.trailers, True)
            else:
                # No trailer fields after all: the stream ends with an empty DATA frame
                # rather than an empty header block, which some clients refuse.
                self.conn.h2.send_data(self.stream_id, b"", True)
        except StreamClosedError:
            self.disconnected = True
            raise ClientDisconnected("the client disconnected") from None
        self.conn.flush()
        return True

    def send_early_hint(self, fields: dict[str, Any]) -> None:
        """103 Early Hints (RFC 8297): ``links`` become ``link`` fields of an interim head."""
        head: Headers = [(b":status", b"103")]
        for link in fields.get("links", ()):
            field = response_header((b"link", link))[3]
            assert field is not None  # link is not connection-specific
            head.append(field)
        try:
            self.conn.h2.send_headers(self.stream_id, head, False)
        except StreamClosedError:
            self.disconnected = True
            raise ClientDisconnected("the client disconnected") from None
        self.conn.flush()

    # -- connection side --------------------------------------------------------------------

    def feed_body(self, data: bytes, flow_controlled_length: int) -> None:
        """Body bytes from the client; acknowledged to its window once the app takes them."""
        self.progress_at = self.conn.state.loop.time()
        self.received_length += len(data)
        if self.final_body_delivered or self.response_complete:
            # Nobody will read these: give the window back at once.
            self.conn.acknowledge(self.stream_id, flow_controlled_length)
            return
        if data:
            self.body.append(data)
        self.unacknowledged += flow_controlled_length
        self.wake()

    def refuse_body(self) -> None:
        """The body outgrew ``--limit-request-body``: 413 if no response started, else reset;
        the app sees a disconnect either way."""
        if self.response_started and self.head is None:
            self.client_gone()
            self.conn.reset_stream(self.stream_id, ErrorCode.CANCEL)
            return
        self.send_error_response(413)
        self.client_gone()

    def window_opened(self) -> None:
        if self.waiting_for_window:
            self.progress_at = self.conn.state.loop.time()
            self.wake()

    def shutdown(self) -> None:
        """Graceful shutdown: a request in flight is left to finish (RFC 9113 §6.8)."""

    def stalled_since(self) -> float | None:
        """When the stream last progressed, if it is waiting on the client now: for its
        window, or for request body the app waits for."""
        if self.disconnected:
            return None
        if self.waiting_for_window or (self.waiter is not None and not self.body_complete):
            return self.progress_at
        return None
