"""One HTTP/2 stream as an ASGI http request: the ``receive`` and ``send`` its app is given.

Request body bytes are handed back to the client's flow-control window only as the app
takes them, so a slow app slows its own stream and no other. Response data waits for the
client's window (RFC 9113 §5.2), and trailers and 103 Early Hints travel as extra header
blocks on the stream (§8.1).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

import h2.exceptions
from h2.errors import ErrorCodes

from hasten.asgi import (
    PLAIN_RESPONSE_CONTENT_TYPE,
    ClientDisconnected,
    Message,
    check_response_header,
    check_response_status,
    plain_response_body,
)
from hasten.logs import error_logger, log_access
from hasten.protocols.h1_cycle import caused_by_disconnect as _caused_by_disconnect

if TYPE_CHECKING:
    from hasten.protocols.http2 import H2Connection

# RFC 9113 §8.2.2: connection-specific fields must not appear in HTTP/2; the app's are dropped.
CONNECTION_SPECIFIC_FIELDS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_NO_BODY_STATUSES = frozenset({204, 304})
_CONTENT_LENGTH_VALUE = re.compile(rb"[0-9]{1,18}").fullmatch
# A DATA frame this large is useful work, and earns back the control-frame budget that the
# client's WINDOW_UPDATEs for it spend; smaller ones (a window dribbled open a byte at a
# time, CVE-2019-9511) earn nothing.
_USEFUL_FRAME_SIZE = 1024
Headers = list[tuple[bytes, bytes]]


def _field_value(value: bytes) -> bytes:
    """RFC 9113 §8.2.1: no whitespace at either end of a value (HTTP/1.1 reads it as OWS).

    h2's own normalisation of sent fields is off (see ``http2.py``); names are lowered here.
    """
    if value and (value[0] in (32, 9) or value[-1] in (32, 9)):
        return value.strip(b" \t")
    return value


class H2Stream:
    """One request and its response on an HTTP/2 connection."""

    __slots__ = (
        "app_started",
        "body",
        "body_complete",
        "body_finished",
        "conn",
        "declared_length",
        "disconnected",
        "final_body_delivered",
        "head",
        "is_head",
        "progress_at",
        "received_length",
        "response_complete",
        "response_headers",
        "response_started",
        "scope",
        "sent_length",
        "start_time",
        "status",
        "stream_id",
        "task",
        "trailers",
        "unacknowledged",
        "waiter",
        "waiting",
        "wants_trailers",
    )

    def __init__(self, conn: H2Connection, stream_id: int, scope: dict[str, Any]) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.scope = scope
        self.is_head = scope["method"] == "HEAD"
        self.task: asyncio.Task[None] | None = None
        self.app_started = False
        self.body: list[bytes] = []
        self.unacknowledged = 0
        self.received_length = 0
        self.body_complete = False
        self.final_body_delivered = False
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        # What the stream waits for from the client (request body or window), for the
        # stall timeout; "" when it waits for nothing.
        self.waiting = ""
        self.progress_at = conn.state.loop.time()
        self.response_started = False
        self.response_complete = False
        self.body_finished = False
        self.wants_trailers = False
        self.head: Headers | None = None
        self.trailers: Headers = []
        self.status = 0
        self.declared_length: int | None = None
        self.sent_length = 0
        self.response_headers: Headers | None = None
        self.start_time = perf_counter()

    # -- app side ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the app and turn whatever goes wrong into a clean end of the stream."""
        self.app_started = True
        try:
            await self._run_app()
        finally:
            self.conn.app_finished(self)

    def cancel(self) -> None:
        """Stop the app: the client no longer wants the answer, or has gone."""
        task = self.task
        if task is None or task.done():
            return
        task.cancel()
        if not self.app_started:
            # Cancelled before its first step, the coroutine never runs, nor its finally.
            self.conn.app_finished(self)

    async def _run_app(self) -> None:
        try:
            result: object = await self.conn.state.app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
        except asyncio.CancelledError:
            # Cancelled by the server: the client reset the stream or the connection ended.
            self._abandon()
            raise
        except Exception as exc:
            if self.disconnected and _caused_by_disconnect(exc):
                error_logger.debug("Client went away while the app was responding.")
                return
            error_logger.error("Exception in ASGI application", exc_info=exc)
            self._fail()
            return
        if result is not None:
            error_logger.error("ASGI callable returned a non-None value: %r", result)
        if not self.response_complete and not self.disconnected:
            if not self.response_started:
                error_logger.error("ASGI callable returned without starting a response.")
            else:
                error_logger.error("ASGI callable returned without completing the response.")
            self._fail()

    def _fail(self) -> None:
        """500 if nothing was sent yet, else reset the stream (RFC 9113 §8.1)."""
        if self.disconnected or self.response_complete:
            return
        if self.head is not None or not self.response_started:
            self.send_plain_response(500)
        else:
            self._abandon()

    def _abandon(self) -> None:
        if not self.disconnected and not self.response_complete:
            self.response_complete = True
            self.conn.reset_stream(self.stream_id, ErrorCodes.INTERNAL_ERROR)
            self.disconnected = True

    def send_plain_response(
        self, status: int, extra_fields: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        """Answer with a short, fixed error response; ``extra_fields`` are fields the status
        calls for."""
        body = b"" if self.is_head else plain_response_body(status)
        self.status = status
        self.response_started = True
        self.head = [
            (b":status", b"%d" % status),
            *self.conn.default_headers(set()),
            (b"content-type", PLAIN_RESPONSE_CONTENT_TYPE),
            (b"content-length", b"%d" % len(plain_response_body(status))),
            *extra_fields,
        ]
        self.declared_length = None
        self.wants_trailers = False
        try:
            self._send_head(end_stream=not body)
            if body:
                self.conn.h2.send_data(self.stream_id, body, end_stream=True)
        except h2.exceptions.ProtocolError:
            self.disconnected = True
        self.conn.flush()
        self._response_done()

    async def receive(self) -> Message:
        """The ASGI ``receive``: body chunks as the client sends them, then the disconnect."""
        if self.final_body_delivered:
            while not (self.disconnected or self.response_complete):
                await self._wait("")
            return {"type": "http.disconnect"}
        while not (self.body or self.body_complete or self.disconnected):
            await self._wait("body")
        if self.disconnected:
            return {"type": "http.disconnect"}
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        if self.unacknowledged:
            self.conn.acknowledge(self.stream_id, self.unacknowledged)
            self.unacknowledged = 0
        more_body = not self.body_complete
        self.final_body_delivered = not more_body
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def _wait(self, what: str) -> None:
        self.waiting = what
        self.progress_at = self.conn.state.loop.time()
        waiter = self.waiter = self.conn.state.loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None
            self.waiting = ""

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def send(self, message: Message) -> None:
        """The ASGI ``send``: validate the message, then hand it to the h2 state machine."""
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        message_type = message["type"]
        if message_type == "http.response.body":
            if not self.response_started or self.body_finished:
                raise RuntimeError(f"Unexpected ASGI message {message_type!r} at this point.")
            await self._send_body(message)
        elif message_type == "http.response.start":
            if self.response_started:
                raise RuntimeError("The response was already started.")
            self._start_response(message)
        elif message_type == "http.response.trailers":
            if not (self.wants_trailers and self.body_finished) or self.response_complete:
                raise RuntimeError(
                    "http.response.trailers must follow the body of a response started "
                    "with trailers=True."
                )
            self._add_trailers(message)
        elif message_type == "http.response.early_hint":
            if self.response_started:
                raise RuntimeError("http.response.early_hint must come before the response.")
            self._send_early_hint(message)
        else:
            raise RuntimeError(f"Unexpected ASGI message {message_type!r}.")
        if self.conn.flow.write_paused:
            await self.conn.flow.drain()

    # -- serialisation ----------------------------------------------------------------------

    def _start_response(self, message: Message) -> None:
        self.status = status = check_response_status(message.get("status"))
        head: Headers = [(b":status", b"%d" % status)]
        overridden: set[bytes] = set()
        for name, value in message.get("headers", ()):
            check_response_header(name, value)
            lowered = name.lower()
            if lowered in CONNECTION_SPECIFIC_FIELDS:
                continue
            if lowered == b"content-length":
                if _CONTENT_LENGTH_VALUE(value) is None:
                    raise RuntimeError(f"Invalid response Content-Length {value!r}")
                self.declared_length = int(value)
            overridden.add(lowered)
            head.append((lowered, _field_value(value)))
        head[1:1] = self.conn.default_headers(overridden)
        self.head = head
        self.response_headers = head
        self.wants_trailers = bool(message.get("trailers", False))
        self.response_started = True

    def _send_head(self, end_stream: bool) -> None:
        head = self.head
        assert head is not None
        self.head = None
        self.conn.h2.send_headers(self.stream_id, head, end_stream=end_stream)

    async def _send_body(self, message: Message) -> None:
        body = message.get("body", b"")
        if type(body) is not bytes:
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise RuntimeError(f"Response body must be bytes, got {type(body).__name__}.")
            body = bytes(body)
        more_body = bool(message.get("more_body", False))
        if self.is_head or self.status in _NO_BODY_STATUSES:
            body = b""
        declared = self.declared_length
        self.sent_length += len(body)
        if declared is not None and self.status not in _NO_BODY_STATUSES and not self.is_head:
            # RFC 9113 §8.1.1: a body that doesn't match its content-length is malformed;
            # the app's mistake must not reach the client as a complete response.
            if self.sent_length > declared:
                raise RuntimeError("Response content is longer than its Content-Length.")
            if not more_body and self.sent_length < declared:
                raise RuntimeError("Response content is shorter than its Content-Length.")
        end_stream = not more_body and not self.wants_trailers
        try:
            if self.head is not None and not body:
                self._send_head(end_stream)
                self.conn.flush_soon()
            else:
                if self.head is not None:
                    self._send_head(end_stream=False)
                if body or end_stream:
                    await self._send_data(body, end_stream)
        except h2.exceptions.ProtocolError:
            # The stream or the connection was closed under the app (reset, GOAWAY).
            self.disconnected = True
            raise ClientDisconnected("the client disconnected") from None
        if not more_body:
            self.body_finished = True
            if not self.wants_trailers:
                self._response_done()

    async def _send_data(self, data: bytes, end_stream: bool) -> None:
        """Send ``data`` as DATA frames as fast as the client's flow-control window allows."""
        conn = self.conn
        machine = conn.h2
        stream_id = self.stream_id
        while True:
            window = machine.local_flow_control_window(stream_id)
            size = min(window, machine.max_outbound_frame_size, len(data))
            if size < len(data) and size <= 0:
                conn.flush()
                await self._wait("window")
                if self.disconnected:
                    raise ClientDisconnected("the client disconnected")
                continue
            chunk = data[:size] if size < len(data) else data
            data = data[size:] if size < len(data) else b""
            self._send_frame(chunk, end_stream and not data)
            if not data:
                break
        conn.flush_soon()

    def _send_frame(self, chunk: bytes, end_stream: bool) -> None:
        """One DATA frame, which the windows have room for."""
        conn = self.conn
        conn.h2.send_data(self.stream_id, chunk, end_stream=end_stream)
        conn.unflushed += len(chunk)
        self.progress_at = conn.state.loop.time()
        if len(chunk) >= _USEFUL_FRAME_SIZE or end_stream:
            conn.control_budget.earn(2)

    def _add_trailers(self, message: Message) -> None:
        for name, value in message.get("headers", ()):
            check_response_header(name, value)
            lowered = name.lower()
            if lowered not in CONNECTION_SPECIFIC_FIELDS:
                self.trailers.append((lowered, _field_value(value)))
        if message.get("more_trailers", False):
            return
        try:
            self.conn.h2.send_headers(self.stream_id, self.trailers, end_stream=True)
        except h2.exceptions.ProtocolError:
            self.disconnected = True
            raise ClientDisconnected("the client disconnected") from None
        self.conn.flush()
        self._response_done()

    def _send_early_hint(self, message: Message) -> None:
        """103 Early Hints (RFC 8297): ``links`` become ``link`` fields of an interim head."""
        head: Headers = [(b":status", b"103")]
        for link in message.get("links", ()):
            check_response_header(b"link", link)
            head.append((b"link", _field_value(link)))
        try:
            self.conn.h2.send_headers(self.stream_id, head)
        except h2.exceptions.ProtocolError:
            self.disconnected = True
            raise ClientDisconnected("the client disconnected") from None
        self.conn.flush()

    def _response_done(self) -> None:
        self.response_complete = True
        self.wake()
        if self.conn.state.access_log:
            log_access(
                self.scope,
                self.status,
                perf_counter() - self.start_time,
                response_bytes=self.sent_length,
                response_headers=self.response_headers,
            )
        self.conn.response_finished(self)

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
            self.conn.reset_stream(self.stream_id, ErrorCodes.CANCEL)
            return
        self.send_plain_response(413)
        self.client_gone()

    def end_body(self) -> None:
        self.body_complete = True
        self.wake()

    def window_opened(self) -> None:
        if self.waiting == "window":
            self.progress_at = self.conn.state.loop.time()
            self.wake()

    def shutdown(self) -> None:
        """Graceful shutdown: a request in flight is left to finish (RFC 9113 §6.8)."""

    def client_gone(self) -> None:
        """The stream was reset or the connection lost: the app sees a disconnect."""
        self.disconnected = True
        self.wake()

    def stalled_since(self) -> float | None:
        """When the stream last progressed, if it is waiting on the client now."""
        if self.waiting in ("body", "window") and not self.disconnected:
            return self.progress_at
        return None
