"""One HTTP/1.1 request and its response: the ``receive`` and ``send`` an app is given.

``RequestCycle`` turns the parser's body events into ``http.request`` messages (with read
backpressure), validates the app's response messages and serialises them: the head is held
back until the first body message so that a small response leaves in one
``transport.write``, and the framing (Content-Length, chunked, or close-delimited for
HTTP/1.0) is decided then. A response complete in that one write waits for the end of the
loop turn (``end_turn``) and leaves with the others finished in the turn. ``H1Connection``
in ``http1.py`` owns the parser and the order in which cycles run.
"""

from __future__ import annotations

import asyncio
import re
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from hasten.asgi import (
    FINAL_STATUS_LINES,
    ClientDisconnected,
    Message,
    check_response_header,
    invalid_status_error,
    plain_response,
)
from hasten.logs import error_logger, log_access
from hasten.protocols.flow import PAUSED_FOR_BODY, READ_HIGH_WATER

if TYPE_CHECKING:
    from hasten.protocols.http1 import H1Connection

CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK: Final = b"0\r\n\r\n"
# Bodies up to this size are copied next to the response head and sent in one write;
# larger ones go out with writelines() so they are not copied.
_COALESCE_LIMIT: Final = 64 * 1024
_CONTENT_LENGTH_VALUE: Final = re.compile(rb"[0-9]{1,18}").fullmatch
_NO_BODY_STATUSES: Final = frozenset({204, 304})
# Response fields the server reads rather than just copies.
_FRAMING_FIELDS: Final = frozenset({b"content-length", b"transfer-encoding", b"connection"})
# Apps send the same few header pairs response after response: each pair is checked,
# lowered and serialised once, then found here (name lowered, header line, whether it is
# one of _FRAMING_FIELDS). Bounded by clearing.
_known_header_lines: Final[dict[tuple[bytes, bytes], tuple[bytes, bytes, bool]]] = {}
_KNOWN_HEADER_LINES_MAX: Final = 4096
# Read on every response: Final, it is a C static in the compiled build, not a dict lookup.
_FINAL_STATUS_LINES: Final = FINAL_STATUS_LINES


class RequestCycle:
    """One request and its response: the ``receive`` and ``send`` the app is given.

    The response head is held back until the first body message (or until the app
    suspends) so that a small response leaves in a single ``transport.write``.
    """

    __slots__ = (
        "body",
        "body_bytes_sent",
        "body_complete",
        "body_size",
        "bytes_left",
        "chunked",
        "client_eof",
        "close_after",
        "conn",
        "declared_length",
        "disconnected",
        "expect_continue",
        "final_body_delivered",
        "head_parts",
        "head_pending",
        "is_head",
        "keep_alive",
        "overridden_defaults",
        "response_complete",
        "response_headers",
        "response_started",
        "scope",
        "start_time",
        "status",
        "task",
        "waiter",
    )

    # Set by _start_response (or send_error_response) before anything reads them: not
    # initialised in __init__, which runs once per request.
    head_parts: list[bytes]
    overridden_defaults: set[bytes] | None
    status: int
    declared_length: int | None
    close_after: bool
    start_time: float  # set when the app starts, read only for the access log

    def __init__(self, conn: H1Connection, scope: dict[str, Any], keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.is_head = scope["method"] == "HEAD"
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_bytes_sent = 0
        self.body_complete = False
        self.final_body_delivered = False
        self.disconnected = False
        self.client_eof = False
        self.expect_continue = False
        self.waiter: asyncio.Future[None] | None = None
        self.response_started = False
        self.response_complete = False
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        self.head_pending = False
        self.bytes_left = 0
        self.chunked = False
        self.task: asyncio.Task[None] | None = None

    # -- app side ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the app for this request and turn whatever goes wrong into a clean answer."""
        state = self.conn.state
        try:
            try:
                result: object = await state.app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
            except BaseException as exc:
                self._app_failed(exc)
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                return
            if result is not None or not self.response_complete:
                self._check_app_result(result)
        finally:
            # The task leaves the registry itself: a done callback would cost one more
            # loop callback per request. (Only shutdown cancels these tasks, and a task
            # cancelled before its first step never gets here; shutdown waits on it anyway.)
            if self.task is not None:
                state.tasks.discard(self.task)
                self.task = None  # no reference cycle left for the garbage collector

    def _check_app_result(self, result: object) -> None:
        if result is not None:
            error_logger.error("ASGI callable returned a non-None value: %r", result)
        if not self.response_started:
            if not self.disconnected:
                error_logger.error("ASGI callable returned without starting a response.")
                self.send_error_response(500)
        elif not self.response_complete:
            if not self.disconnected:
                error_logger.error("ASGI callable returned without completing the response.")
            self.conn.close_transport()

    def _app_failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            # Cancelled by the server (graceful-shutdown timeout) or from within the app.
            if not self.response_complete:
                self.conn.close_transport()
            return
        if self.disconnected and caused_by_disconnect(exc):
            error_logger.debug("Client disconnected while the app was responding.")
            return
        error_logger.error("Exception in ASGI application", exc_info=exc)
        if self.response_complete:
            # The client has its whole response, and the connection may already be
            # serving the next request: nothing to undo.
            return
        if not self.response_started or self.head_pending:
            self.response_started = True
            self.send_error_response(500)
        else:
            self.conn.close_transport()

    def send_error_response(self, status: int) -> None:
        """Answer with a plain error response and close the connection."""
        self.head_pending = False
        self.response_started = True
        self.response_complete = True
        self.status = status
        if not self.disconnected:
            self.conn.write(plain_response(status, head=self.is_head))
        self._wake()
        self.conn.close_transport()
        if self.conn.state.access_log:
            self._log_access()

    async def receive(self) -> Message:
        """The ASGI ``receive``: body chunks as they arrive, then ``http.disconnect``."""
        if self.expect_continue:
            self.expect_continue = False
            # RFC 9110 §10.1.1: no 100 once the response started, nor for a body that is
            # already arriving (the client did not wait for it).
            if not (self.response_started or self.disconnected or self.body or self.body_complete):
                self.conn.write(CONTINUE_RESPONSE)
        if self.final_body_delivered:
            # The whole body was handed over; what is left to say is the disconnect.
            while not (self.disconnected or self.response_complete or self.client_eof):
                await self._wait()
            return {"type": "http.disconnect"}
        while not (self.body or self.body_complete or self.disconnected):
            await self._wait()
        if self.disconnected or (self.response_complete and not self.body):
            return {"type": "http.disconnect"}
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        self.body_size = 0
        more_body = not self.body_complete
        if more_body:
            self.conn.flow.resume_reading(PAUSED_FOR_BODY)
        else:
            self.final_body_delivered = True
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def _wait(self) -> None:
        """Wait for the next ``_wake()``.

        Several ``receive()`` calls may wait at once (an app polling for the disconnect
        in one task while reading in another): they share one future, shielded so that
        cancelling one waiter leaves the others waiting.
        """
        waiter = self.waiter
        if waiter is None:
            waiter = self.waiter = self.conn.state.loop.create_future()
        await asyncio.shield(waiter)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)

    async def send(self, message: Message) -> None:
        """The ASGI ``send``: validate the message, then serialise it onto the transport."""
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        # ASGI messages are dicts. Compiled, reading a ``dict`` is a primitive and reading a
        # Mapping a method call (~100 instructions more per read, a dozen per response).
        fields: dict[str, Any] = message if type(message) is dict else dict(message)
        message_type = fields.get("type")
        if not self.response_started:
            if message_type != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got {message_type!r}."
                )
            self._start_response(fields)
            return
        if self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message {message_type!r} after the response.")
        if message_type != "http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', but got {message_type!r}."
            )
        body = fields.get("body", b"")
        more_body = fields.get("more_body", False)
        if type(body) is not bytes:
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise RuntimeError(f"Response body must be bytes, got {type(body).__name__}.")
            body = bytes(body)
        # Serialisation of the body, in this method rather than a helper: it runs for
        # every response, and a Python call costs about 1% of a small request.
        writes_body = not (self.is_head or self.status in _NO_BODY_STATUSES)
        if writes_body and body and self.declared_length is not None:
            # Checked before the head is committed, so the app's error can become a 500.
            left = self.declared_length if self.head_pending else self.bytes_left
            if len(body) > left:
                raise RuntimeError("Response content is longer than its Content-Length.")
        head = self._finish_head(None if more_body else body) if self.head_pending else b""
        if writes_body and body:
            self.body_bytes_sent += len(body)
            if self.declared_length is not None:
                self.bytes_left -= len(body)
            elif self.chunked:
                body = b"%x\r\n%b\r\n" % (len(body), body)
        else:
            body = b""
        if not more_body:
            if self.chunked and writes_body:
                body += _LAST_CHUNK
            self.response_complete = True
        conn = self.conn
        if head:
            if len(body) > _COALESCE_LIMIT:
                conn.writelines((head, body))
            elif self.response_complete and not self.close_after:
                conn.write_at_turn_end(head + body)
            else:
                conn.write(head + body)
        elif body:
            conn.write(body)
        if self.response_complete:
            if self.waiter is not None:
                self._wake()
            if conn.state.access_log:
                self._log_access()
            if (
                self.declared_length is not None
                and self.bytes_left
                and not (self.is_head or self.status in _NO_BODY_STATUSES)
            ):
                error_logger.error(
                    "Response content is shorter than its Content-Length; closing the connection."
                )
                self.close_after = True
            self.conn.response_finished(self)
        if conn.flow.write_paused:
            await conn.flow.drain()

    # -- serialisation ----------------------------------------------------------------------

    def _start_response(self, message: dict[str, Any]) -> None:
        status = message.get("status")
        if type(status) is not int or (first_line := _FINAL_STATUS_LINES.get(status)) is None:
            raise invalid_status_error(status)
        headers = message.get("headers", ())
        try:
            header_iterator = iter(headers)
        except TypeError:
            raise RuntimeError(f"Response headers must be iterable, got {headers!r}") from None
        parts = [first_line, b""]  # [1] becomes the default header block
        state = self.conn.state
        default_names = state.default_header_names
        close = not self.keep_alive or self.conn.closing
        # Nothing is stored on the cycle until every header passed its checks, so an app
        # that catches the RuntimeError and starts again begins afresh.
        declared_length: int | None = None
        overridden_defaults: set[bytes] | None = None
        for header in header_iterator:
            try:
                lowered, line, framing = _known_header_lines[header]
            except (KeyError, TypeError):  # new, or a list (unhashable)
                lowered, line, framing = _header_line(header)
            if framing:
                if lowered == b"content-length":
                    if declared_length is not None:
                        # Two lengths make the framing ambiguous (RFC 9110 §8.6).
                        raise RuntimeError("More than one response Content-Length header.")
                    declared_length = int(header[1])
                    if status == 204:
                        # RFC 9110 §8.6: a 204 carries no Content-Length.
                        continue
                elif lowered == b"transfer-encoding":
                    # The server frames the body itself; the app's framing header is replaced.
                    continue
                else:  # connection
                    if b"close" in header[1].lower():
                        close = True
                    continue
            elif lowered in default_names:
                if overridden_defaults is None:
                    overridden_defaults = set()
                overridden_defaults.add(lowered)
            parts.append(line)
        self.status = status
        if state.access_log:
            self.response_headers = list(headers)
        self.declared_length = None if status == 204 else declared_length
        self.overridden_defaults = overridden_defaults
        self.close_after = close
        self.head_parts = parts
        self.response_started = True
        self.head_pending = True
        # The app may now wait a long time before its first body message; make sure the
        # client sees the head soon. Usually the body follows at once and the flush finds
        # nothing left to send. (conn.flush_at_turn_end(), inlined: once per request.)
        conn = self.conn
        if conn.held_output is None:
            conn.held_output = b""
            turn_end = state.turn_end
            if not turn_end:
                state.loop.call_soon(end_turn, turn_end)
            turn_end.append(conn)

    def flush_pending_head(self) -> None:
        """Send a held-back response head now, committing to a streamed body."""
        if self.head_pending and not self.disconnected:
            self.conn.write(self._finish_head(None))

    def _finish_head(self, whole_body: bytes | None) -> bytes:
        """Decide the framing and return the serialised head.

        ``whole_body`` is the complete body when it is known at this point (the first body
        message was also the last), else ``None``.
        """
        self.head_pending = False
        parts = self.head_parts
        state = self.conn.state
        if self.overridden_defaults:
            parts[1] = state.default_headers_except(frozenset(self.overridden_defaults))
        else:
            parts[1] = state.default_headers
        status = self.status
        if self.declared_length is not None:
            self.bytes_left = self.declared_length
        elif status in _NO_BODY_STATUSES:
            pass
        elif whole_body is not None:
            if whole_body or not self.is_head:
                parts.append(b"content-length: %d\r\n" % len(whole_body))
        elif self.scope["http_version"] == "1.1":
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            # HTTP/1.0 knows no chunked coding: the end of the body is the end of the
            # connection (RFC 9112 §6.3, item 8).
            self.close_after = True
        if self.expect_continue and not self.body_complete:
            # The client still waits for 100 Continue before sending the body, and may
            # never send it: the connection closes after this response, so say so.
            self.close_after = True
        if self.close_after:
            parts.append(b"connection: close\r\n\r\n")
        elif self.scope["http_version"] == "1.0":
            parts.append(b"connection: keep-alive\r\n\r\n")
        else:
            parts.append(b"\r\n")
        return b"".join(parts)

    def _log_access(self) -> None:
        log_access(
            self.scope,
            self.status,
            perf_counter() - self.start_time,
            response_bytes=self.body_bytes_sent,
            response_headers=self.response_headers,
        )

    # -- connection side --------------------------------------------------------------------

    def feed_body(self, chunk: bytes) -> None:
        if self.response_complete:
            # The app answered without reading the whole body: the rest is read and
            # dropped, up to a limit, so the connection can serve the next request
            # (RFC 9112 §9.3: read the entire body or close).
            self.body_size += len(chunk)
            if self.body_size > self.conn.state.limit_body_drain:
                self.conn.close_transport()
            return
        self.body.append(chunk)
        self.body_size += len(chunk)
        if self.body_size > READ_HIGH_WATER:
            self.conn.flow.pause_reading(PAUSED_FOR_BODY)
        self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        self._wake()

    def client_finished_sending(self) -> None:
        """The client shut down its side: it may still read the response, or be gone."""
        self.client_eof = True
        self._wake()

    def client_gone(self) -> None:
        self.disconnected = True
        self._wake()


def _header_line(header: Any) -> tuple[bytes, bytes, bool]:
    """Check one response header the app sent: its lowered name, its line, and whether the
    server reads it (``_FRAMING_FIELDS``); remembered when the pair is a tuple."""
    try:
        name, value = header
    except (TypeError, ValueError):
        raise RuntimeError(
            f"Response headers must be (name, value) pairs, got {header!r}"
        ) from None
    check_response_header(name, value)
    lowered = name.lower()
    if lowered == b"content-length" and _CONTENT_LENGTH_VALUE(value) is None:
        raise RuntimeError(f"Invalid response Content-Length {value!r}")
    entry = (lowered, b"%b: %b\r\n" % (name, value), lowered in _FRAMING_FIELDS)
    if type(header) is tuple:
        if len(_known_header_lines) >= _KNOWN_HEADER_LINES_MAX:
            _known_header_lines.clear()
        _known_header_lines[header] = entry
    return entry


# At most this many connections wait for the end of a loop turn: past it, what they hold
# leaves at once. 16 measured best with wrk -c64 and -c1000 (hello, FastAPI json); a
# batch of any size wakes a sleeping peer once.
TURN_END_BATCH: Final = 16


def end_turn(turn_end: list[H1Connection]) -> None:
    """The end of a loop turn: held output leaves, and so does a head still held back for
    its body (that app is waiting for something else: the client sees the head now)."""
    connections = turn_end.copy()
    turn_end.clear()
    for conn in connections:  # one loop over every response of the turn: kept flat
        held = conn.held_output
        conn.held_output = None
        if held and not conn.transport.is_closing():  # write_held_output(), inlined
            conn.transport.write(held)
        cycle = conn.cycle
        if cycle is not None and cycle.head_pending:
            cycle.flush_pending_head()


def caused_by_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` came, directly or through its causes, from sending to a gone client."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ClientDisconnected):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
