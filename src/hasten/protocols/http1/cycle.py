"""One HTTP/1.1 request and its response: the wire side of an ``Exchange``.

``RequestCycle`` feeds the parser's body events to the exchange's ``receive()`` (with read
backpressure) and serialises the response messages ``exchange.py`` has checked: the head is held
back until the first body message so that a small response leaves in one
``transport.write``, and the framing (Content-Length, chunked, or close-delimited for
HTTP/1.0) is decided then. A response complete in that one write waits for the end of the
loop turn (``end_turn``) and leaves with the others finished in the turn. ``H1Connection``
in ``connection.py`` owns the parser and the order in which cycles run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from hasten.asgi import (
    FINAL_STATUS_LINES,
    invalid_status_error,
    plain_response,
)
from hasten.logs import error_logger
from hasten.protocols.exchange import (
    KNOWN_RESPONSE_HEADERS,
    NO_BODY_STATUSES,
    Exchange,
    response_header,
)
from hasten.protocols.flow import PAUSED_FOR_BODY, READ_HIGH_WATER
from hasten.protocols.http1.sendfile import sendfile, sendfile_socket

if TYPE_CHECKING:
    from hasten.protocols.http1.connection import H1Connection

CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK: Final = b"0\r\n\r\n"
# Bodies up to this size are copied next to the response head and sent in one write;
# larger ones go out with writelines() so they are not copied.
_COALESCE_LIMIT: Final = 64 * 1024


class RequestCycle(Exchange):
    """The HTTP/1.1 wire side of one request: the response serialised onto the connection.

    The response head is held back until the first body message (or until the app
    suspends) so that a small response leaves in a single ``transport.write``.
    """

    __slots__ = (
        "body_size",
        "bytes_left",
        "chunked",
        "close_after",
        "conn",
        "head_parts",
        "head_pending",
        "keep_alive",
        "overridden_defaults",
    )

    # Set by start_response (or send_error_response) before anything reads them: not
    # initialised in __init__, which runs once per request.
    head_parts: list[bytes]
    overridden_defaults: set[bytes] | None
    close_after: bool

    def __init__(self, conn: H1Connection, scope: dict[str, Any], keep_alive: bool) -> None:
        super().__init__(conn.state, conn.flow, scope)
        self.conn = conn
        self.keep_alive = keep_alive
        self.body_size = 0
        self.head_pending = False
        self.bytes_left = 0
        self.chunked = False

    # -- the app's answer -------------------------------------------------------------------

    def fail_response(self) -> None:
        if not self.response_started or self.head_pending:
            self.send_error_response(500)
        else:
            self.conn.close_transport()

    def abort(self) -> None:
        self.conn.close_transport()

    def app_done(self) -> None:
        # The task leaves the registry itself: a done callback would cost one more loop
        # callback per request. (Only shutdown cancels these tasks, and a task cancelled
        # before its first step never gets here; shutdown waits on it anyway.)
        if self.task is not None:
            self.state.tasks.discard(self.task)
            self.task = None  # no reference cycle left for the garbage collector

    def send_error_response(self, status: int) -> None:
        """Answer with a plain error response and close the connection."""
        self.head_pending = False
        self.response_started = True
        self.response_complete = True
        self.status = status
        if not self.disconnected:
            self.conn.write(plain_response(status, head=self.is_head))
        self.wake()
        self.conn.close_transport()
        if self.state.access_log:
            self.log_access()

    def send_continue(self) -> None:
        self.conn.write(CONTINUE_RESPONSE)

    def body_taken(self, more_body: bool) -> None:
        self.body_size = 0
        if more_body:
            self.flow.resume_reading(PAUSED_FOR_BODY)

    def send_body(self, body: bytes, more_body: bool) -> None:
        # Kept in one method, without helpers: it runs for every response.
        writes_body = not (self.is_head or self.status in NO_BODY_STATUSES)
        if writes_body and body and self.declared_length is not None:
            # Checked before the head is committed, so the app's error can become a 500.
            left = self.declared_length if self.head_pending else self.bytes_left
            if len(body) > left:
                raise RuntimeError("Response content is longer than its Content-Length.")
        head = self._finish_head(None if more_body else len(body)) if self.head_pending else b""
        if writes_body and body:
            self.body_bytes_sent += len(body)
            if self.declared_length is not None:
                self.bytes_left -= len(body)
            elif self.chunked:
                body = b"%x\r\n%b\r\n" % (len(body), body)
        else:
            body = b""
        if not more_body and self.chunked and writes_body:
            body += _LAST_CHUNK
        conn = self.conn
        if head:
            if len(body) > _COALESCE_LIMIT:
                conn.writelines((head, body))
            elif not (more_body or self.close_after):
                conn.write_at_turn_end(head + body)
            else:
                conn.write(head + body)
        elif body:
            conn.write(body)

    async def send_file(self, fd: int, offset: int, count: int, more_body: bool) -> None:
        conn = self.conn
        socket_fd = sendfile_socket(conn.transport) if count else None
        if socket_fd is None:
            await self.send_file_chunks(fd, offset, count, more_body)
            return
        head = self._finish_head(None if more_body else count) if self.head_pending else b""
        chunked = self.chunked
        if head or chunked:
            conn.write(head + b"%x\r\n" % count if chunked else head)
        conn.write_held_output()
        await sendfile(
            conn.transport, self.flow, socket_fd, fd, offset, count, self.state.limit_write_buffer
        )
        self.body_bytes_sent += count
        if self.declared_length is not None:
            self.bytes_left -= count
        if chunked:
            conn.write(b"\r\n" if more_body else b"\r\n" + _LAST_CHUNK)

    def response_finished(self) -> None:
        if (
            self.declared_length is not None
            and self.bytes_left
            and not (self.is_head or self.status in NO_BODY_STATUSES)
        ):
            error_logger.error(
                "Response content is shorter than its Content-Length; closing the connection."
            )
            self.close_after = True
        self.conn.response_finished(self)

    # -- serialisation ----------------------------------------------------------------------

    def start_response(self, fields: dict[str, Any]) -> None:
        status = fields.get("status")
        if type(status) is not int or (first_line := FINAL_STATUS_LINES.get(status)) is None:
            raise invalid_status_error(status)
        headers = fields.get("headers", ())
        try:
            header_iterator = iter(headers)
        except TypeError:
            raise RuntimeError(f"Response headers must be iterable, got {headers!r}") from None
        parts = [first_line, b""]  # [1] becomes the default header block
        state = self.state
        default_names = state.default_header_names
        close = not self.keep_alive or self.conn.closing
        # Nothing is stored on the cycle until every header passed its checks, so an app
        # that catches the RuntimeError and starts again begins afresh.
        declared_length: int | None = None
        overridden_defaults: set[bytes] | None = None
        for header in header_iterator:
            try:
                lowered, line, framing, _ = KNOWN_RESPONSE_HEADERS[header]
            except (KeyError, TypeError):  # new, or a list (unhashable)
                lowered, line, framing, _ = response_header(header)
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
        # nothing left to send.
        conn = self.conn
        if not conn.awaits_turn_end:
            conn.flush_at_turn_end()

    def flush_pending_head(self) -> None:
        """Send a held-back response head now, committing to a streamed body."""
        if self.head_pending and not self.disconnected:
            self.conn.write(self._finish_head(None))

    def _finish_head(self, whole_length: int | None) -> bytes:
        """Decide the framing and return the serialised head.

        ``whole_length`` is the length of the complete body when it is known at this point
        (the first body message was also the last), else ``None``.
        """
        self.head_pending = False
        parts = self.head_parts
        state = self.state
        if self.overridden_defaults:
            parts[1] = state.default_headers_except(frozenset(self.overridden_defaults))
        else:
            parts[1] = state.default_headers
        status = self.status
        if self.declared_length is not None:
            self.bytes_left = self.declared_length
        elif status in NO_BODY_STATUSES:
            pass
        elif whole_length is not None:
            if whole_length or not self.is_head:
                parts.append(b"content-length: %d\r\n" % whole_length)
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

    # -- connection side --------------------------------------------------------------------

    def feed_body(self, chunk: bytes) -> None:
        if self.response_complete:
            # The app answered without reading the whole body: the rest is read and
            # dropped, up to a limit, so the connection can serve the next request
            # (RFC 9112 §9.3: read the entire body or close).
            self.body_size += len(chunk)
            if self.body_size > self.state.limit_body_drain:
                self.conn.close_transport()
            return
        self.body.append(chunk)
        self.body_size += len(chunk)
        if self.body_size > READ_HIGH_WATER:
            self.flow.pause_reading(PAUSED_FOR_BODY)
        self.wake()

    def client_finished_sending(self) -> None:
        """The client shut down its side: it may still read the response, or be gone."""
        self.client_eof = True
        self.wake()


# At most this many connections wait for the end of a loop turn: past it, what they hold
# leaves at once, so the first responses of a long turn don't wait for all of it.
TURN_END_BATCH: Final = 16


def end_turn(turn_end: list[H1Connection]) -> None:
    """The end of a loop turn: held output leaves, and so does a head still held back for
    its body (that app is waiting for something else: the client sees the head now)."""
    connections = turn_end.copy()
    turn_end.clear()
    for conn in connections:
        conn.awaits_turn_end = False
        conn.write_held_output()
        cycle = conn.cycle
        if cycle is not None and cycle.head_pending:
            cycle.flush_pending_head()
