"""The ASGI side of one HTTP request, whichever protocol carries it.

``http_scope`` builds the scope of every HTTP request. ``Exchange`` is what an app sees of
a request: ``receive()`` (the body as it arrives, then
the disconnect, for any number of waiting tasks), ``send()`` (the order and the checks of
the response messages: start, body, trailers, early hints), and the runner that turns
whatever the app does wrong into a clean answer, with one error policy and one set of log
lines. The access log is written here, once per response.

Messages that an ASGI extension adds are taken only where the protocol offers the extension
(it is named in the scope): trailers and early hints over HTTP/2; files as the body
(``http.response.pathsend`` and ``http.response.zerocopysend``, ``files.py``) everywhere,
sent by the one wire method ``send_file``: ``os.sendfile`` on plain HTTP/1.1
(``http1/sendfile.py``), else ``send_file_chunks``, the file read in chunks and sent as
body chunks under the protocol's flow control.

A protocol subclasses it with its wire side only: ``RequestCycle`` (HTTP/1.1,
``http1/cycle.py``) and ``H2Stream`` (HTTP/2, ``http2/stream.py``) serialise the head, the
body and the trailers, answer with a plain status, abort, and apply their flow control.
Compiled with mypyc, the wire methods are vtable calls on a native class.
"""

from __future__ import annotations

import asyncio
import re
from asyncio import Task
from collections.abc import Awaitable, Coroutine
from time import perf_counter
from typing import Any, Final

from hasten.asgi import ASGI_VERSION, ClientDisconnected, Message, check_response_header
from hasten.logs import error_logger, log_access
from hasten.protocols.files import (
    FILE_CHUNK_SIZE,
    PATHSEND_EXTENSION,
    ZEROCOPYSEND_EXTENSION,
    FileRange,
    pathsend_range,
    read_file_chunk,
    zerocopysend_range,
)
from hasten.protocols.flow import FlowControl
from hasten.proxy import apply_proxy_headers
from hasten.state import ServerState

# RFC 9110 §6.4.1: responses to these statuses carry no content.
NO_BODY_STATUSES: Final = frozenset({204, 304})
# The ASGI extensions that add response messages, named in the scope when a protocol
# carries them.
TRAILERS_EXTENSION: Final = "http.response.trailers"
EARLY_HINT_EXTENSION: Final = "http.response.early_hint"
# Offered on every HTTP request: each protocol can send a file as the body.
FILE_EXTENSIONS: Final[dict[str, Any]] = {PATHSEND_EXTENSION: {}, ZEROCOPYSEND_EXTENSION: {}}


# RFC 9110 §8.6: a Content-Length the app sends is digits (and fits a 64-bit length).
_CONTENT_LENGTH_VALUE: Final = re.compile(rb"[0-9]{1,18}").fullmatch
# The response fields HTTP/1.1's framing reads rather than passes on.
_FRAMING_FIELDS: Final = frozenset({b"content-length", b"transfer-encoding", b"connection"})
# RFC 9113 §8.2.2: connection-specific fields must not appear in HTTP/2; the app's are dropped.
CONNECTION_SPECIFIC_FIELDS: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
# One checked response header, ready for either wire: its name lowered, its HTTP/1.1 line,
# whether HTTP/1.1's framing reads it, and its HTTP/2 field (None: not sent over HTTP/2).
ResponseHeader = tuple[bytes, bytes, bool, tuple[bytes, bytes] | None]
# Apps send the same few header pairs response after response: each pair is checked and
# prepared once, then found here by its (name, value) tuple. Bounded by clearing.
KNOWN_RESPONSE_HEADERS: Final[dict[tuple[bytes, bytes], ResponseHeader]] = {}
_KNOWN_RESPONSE_HEADERS_MAX: Final = 4096


def response_header(header: Any) -> ResponseHeader:
    """Check one response header the app sent (``RuntimeError`` if it must not reach the
    wire) and prepare it; remembered in ``KNOWN_RESPONSE_HEADERS`` when it is a tuple."""
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
    # RFC 9113 §8.2.1: no whitespace at either end of a value (HTTP/1.1 reads it as OWS).
    field = None if lowered in CONNECTION_SPECIFIC_FIELDS else (lowered, value.strip(b" \t"))
    entry = (lowered, b"%b: %b\r\n" % (name, value), lowered in _FRAMING_FIELDS, field)
    if type(header) is tuple:
        if len(KNOWN_RESPONSE_HEADERS) >= _KNOWN_RESPONSE_HEADERS_MAX:
            KNOWN_RESPONSE_HEADERS.clear()
        KNOWN_RESPONSE_HEADERS[header] = entry
    return entry


def http_scope(
    state: ServerState,
    http_version: str,
    scheme: str,
    method: str,
    path: str,
    raw_path: bytes,
    query_string: bytes,
    headers: list[tuple[bytes, bytes]],
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    extensions: dict[str, Any],
) -> dict[str, Any]:
    """The ASGI http scope of a request: ``path`` and ``raw_path`` are the target's, which
    the root path prefixes here; a trusted proxy's headers say who the client is."""
    root_path = state.root_path
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": http_version,
        "scheme": scheme,
        "method": method,
        "path": root_path + path if root_path else path,
        "raw_path": root_path.encode("ascii") + raw_path if root_path else raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "state": state.lifespan_state.copy(),
        "extensions": extensions,
    }
    if state.trusted_proxies is not None:
        scope["client"], scope["scheme"], scope["headers"] = apply_proxy_headers(
            state.trusted_proxies, client, scheme, headers
        )
    return scope


def start_app_task(
    state: ServerState, app_run: Coroutine[Any, Any, None], name: str
) -> asyncio.Task[None]:
    """Run ``app_run`` (an exchange's or a WebSocket's app) as a task of the server's.

    A plain task, not an eager one (Python 3.12's eager_start would run the app inside
    data_received): reading every ready socket first and then running the apps serves a
    loaded server better. A named ``Task`` rather than ``loop.create_task()``: every unnamed
    task gets a "Task-<n>" string formatted for it (uvloop names a task only after making
    it); a task factory the app set is honoured. The explicit context keeps each request
    from starting in the previous one's.
    """
    loop = state.loop
    if loop.get_task_factory() is None:
        task = Task(app_run, loop=loop, name=name, context=state.base_context.copy())
    else:
        task = loop.create_task(app_run, context=state.base_context.copy())
    state.tasks.add(task)
    return task


def at_capacity(state: ServerState) -> bool:
    """Whether ``--limit-concurrency`` refuses a new request or WebSocket now (503); says so
    in the error log."""
    if state.limit_concurrency is not None and state.over_capacity():
        error_logger.warning("Exceeded concurrency limit; answering 503.")
        return True
    return False


class Exchange:
    """One request and its response: the ``receive`` and ``send`` the app is given.

    Subclasses supply the wire side: the methods below that raise ``NotImplementedError``.
    """

    __slots__ = (
        "app_started",
        "body",
        "body_begun",
        "body_bytes_sent",
        "body_complete",
        "body_finished",
        "client_eof",
        "declared_length",
        "disconnected",
        "expect_continue",
        "final_body_delivered",
        "flow",
        "is_head",
        "response_complete",
        "response_headers",
        "response_started",
        "scope",
        "start_time",
        "state",
        "status",
        "task",
        "waiter",
        "wants_trailers",
    )

    # Set by start_response (or send_error_response) before anything reads them.
    status: int
    declared_length: int | None
    start_time: float  # set when the app starts, read only for the access log

    def __init__(self, state: ServerState, flow: FlowControl, scope: dict[str, Any]) -> None:
        self.state = state
        self.flow = flow
        self.scope = scope
        self.is_head = scope["method"] == "HEAD"
        self.task: asyncio.Task[None] | None = None
        self.app_started = False
        # Request body chunks not yet taken by receive().
        self.body: list[bytes] = []
        self.body_complete = False
        self.final_body_delivered = False
        self.disconnected = False
        # The client shut down its side (HTTP/1.1 half-close): nothing more will come.
        self.client_eof = False
        self.expect_continue = False
        self.waiter: asyncio.Future[None] | None = None
        self.response_started = False
        self.body_finished = False
        # A body message (or a file) has been sent: pathsend may no longer replace the body.
        self.body_begun = False
        self.wants_trailers = False
        self.response_complete = False
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        self.body_bytes_sent = 0

    # -- the app ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the app for this request and turn whatever goes wrong into a clean answer."""
        self.app_started = True
        try:
            try:
                result: object = await self.state.app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
            except BaseException as exc:
                self._app_failed(exc)
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                return
            if result is not None or not self.response_complete:
                self._check_app_result(result)
        finally:
            self.app_done()

    def _check_app_result(self, result: object) -> None:
        if result is not None:
            error_logger.error("ASGI callable returned a non-None value: %r", result)
        if self.response_complete or self.disconnected:
            return
        if not self.response_started:
            error_logger.error("ASGI callable returned without starting a response.")
        else:
            error_logger.error("ASGI callable returned without completing the response.")
        self.fail_response()

    def _app_failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            # Cancelled by the server (the client went, graceful-shutdown timeout) or from
            # within the app.
            if not self.response_complete:
                self.abort()
            return
        if self.disconnected and caused_by_disconnect(exc):
            error_logger.debug("Client disconnected while the app was responding.")
            return
        error_logger.error("Exception in ASGI application", exc_info=exc)
        if not self.response_complete:
            # The client has its whole response otherwise, and the connection may already
            # be serving the next request: nothing to undo.
            self.fail_response()

    async def receive(self) -> Message:
        """The ASGI ``receive``: body chunks as they arrive, then ``http.disconnect``."""
        if self.expect_continue:
            self.expect_continue = False
            # RFC 9110 §10.1.1: no 100 once the response started, nor for a body that is
            # already arriving (the client did not wait for it).
            if not (self.response_started or self.disconnected or self.body or self.body_complete):
                self.send_continue()
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
        more_body = not self.body_complete
        self.final_body_delivered = not more_body
        self.body_taken(more_body)
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def _wait(self) -> None:
        """Wait for the next ``wake()``.

        Several ``receive()`` calls may wait at once (an app polling for the disconnect
        in one task while reading in another): they share one future, shielded so that
        cancelling one waiter leaves the others waiting.
        """
        waiter = self.waiter
        if waiter is None:
            waiter = self.waiter = self.state.loop.create_future()
            self.wait_started()
        await asyncio.shield(waiter)

    def wake(self) -> None:
        """Something the app may wait for happened: body, disconnect, response sent."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)

    async def send(self, message: Message) -> None:
        """The ASGI ``send``: check the message's place and content, then hand it to the
        wire side."""
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        # ASGI messages are dicts. Compiled, reading a ``dict`` is a primitive and reading a
        # Mapping a method call.
        fields: dict[str, Any] = message if type(message) is dict else dict(message)
        message_type = fields.get("type")
        if not self.response_started:
            if message_type == "http.response.start":
                self.start_response(fields)
                return
            if message_type == EARLY_HINT_EXTENSION and self._carries(EARLY_HINT_EXTENSION):
                self.send_early_hint(fields)
            else:
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got {message_type!r}."
                )
        elif self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message {message_type!r} after the response.")
        elif self.body_finished:
            if message_type != TRAILERS_EXTENSION:
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.trailers', but got {message_type!r}."
                )
            if self.send_trailers(fields):
                self.response_done()
        elif message_type == "http.response.body":
            body = fields.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise RuntimeError(f"Response body must be bytes, got {type(body).__name__}.")
                body = bytes(body)
            more_body = bool(fields.get("more_body", False))
            self.body_begun = True
            pending = self.send_body(body, more_body)
            if pending is not None:
                await pending
            if not more_body:
                self.body_finished = True
                if not self.wants_trailers:
                    self.response_done()
        elif message_type == ZEROCOPYSEND_EXTENSION and self._carries(ZEROCOPYSEND_EXTENSION):
            more_body = bool(fields.get("more_body", False))
            await self._send_file_range(zerocopysend_range(fields), more_body)
        elif message_type == PATHSEND_EXTENSION and self._carries(PATHSEND_EXTENSION):
            if self.body_begun:
                raise RuntimeError(
                    "'http.response.pathsend' replaces the body; it cannot follow body messages."
                )
            file = pathsend_range(fields)
            try:
                await self._send_file_range(file, more_body=False)
            finally:
                file.close()
        else:
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', but got {message_type!r}."
            )
        if self.flow.write_paused:
            await self.flow.drain()

    async def _send_file_range(self, file: FileRange, more_body: bool) -> None:
        """Send a file's range as the next part of the body. Its length is checked against
        the Content-Length before anything is sent (the app's error can become a 500); a
        file that fails once sending began aborts the response, with one log line."""
        self.body_begun = True
        if self.is_head or self.status in NO_BODY_STATUSES:
            pending = self.send_body(b"", more_body)
            if pending is not None:
                await pending
        else:
            declared = self.declared_length
            if declared is not None:
                length = self.body_bytes_sent + file.count
                if length > declared:
                    raise RuntimeError("Response content is longer than its Content-Length.")
                if length < declared and not more_body:
                    raise RuntimeError("Response content is shorter than its Content-Length.")
            try:
                await self.send_file(file.fd, file.offset, file.count, more_body)
            except ClientDisconnected:
                # The socket broke under sendfile, maybe before the loop reported the
                # connection lost: the client is gone either way.
                if not self.disconnected:
                    self.abort()
                raise
            except OSError as exc:
                error_logger.warning(
                    "File for %r could not be sent (%s); aborting the response.",
                    self.scope.get("path"),
                    exc,
                )
                self.abort()
                raise ClientDisconnected("the response was aborted") from exc
            file.sent()
        if not more_body:
            self.body_finished = True
            if not self.wants_trailers:
                self.response_done()

    async def send_file_chunks(self, fd: int, offset: int, count: int, more_body: bool) -> None:
        """``send_file`` where zero-copy is impossible: the range read in chunks and sent as
        body chunks, each waiting for the client's window and the connection's buffer."""
        end = offset + count
        position = offset
        while True:
            size = min(FILE_CHUNK_SIZE, end - position)
            chunk = read_file_chunk(fd, position, size) if size else b""
            position += size
            last = position >= end
            pending = self.send_body(chunk, more_body or not last)
            if pending is not None:
                await pending
            if last:
                return
            if self.flow.write_paused:
                await self.flow.drain()
            if self.disconnected:
                raise ClientDisconnected("the client disconnected")

    def _carries(self, extension: str) -> bool:
        """Whether the protocol offers the ASGI extension ``extension`` (in the scope)."""
        extensions = self.scope.get("extensions")
        return extensions is not None and extension in extensions

    def response_done(self) -> None:
        """The whole response has been handed to the wire."""
        self.response_complete = True
        if self.waiter is not None:
            self.wake()
        if self.state.access_log:
            self.log_access()
        self.response_finished()

    def log_access(self) -> None:
        log_access(
            self.scope,
            self.status,
            perf_counter() - self.start_time,
            response_bytes=self.body_bytes_sent,
            response_headers=self.response_headers,
        )

    # -- the connection ---------------------------------------------------------------------

    def end_body(self) -> None:
        self.body_complete = True
        self.wake()

    def client_gone(self) -> None:
        """The client went away (or reset the stream): the app sees a disconnect."""
        self.disconnected = True
        self.wake()

    # -- the wire side ----------------------------------------------------------------------

    def start_response(self, fields: dict[str, Any]) -> None:
        """Check an ``http.response.start`` and keep its head for the first body message;
        nothing is stored if it fails, so that an app may catch the error and start again."""
        raise NotImplementedError

    def send_body(self, body: bytes, more_body: bool) -> Awaitable[None] | None:
        """Send a body chunk (with the head before the first); what to await, if anything,
        before the next message (HTTP/2: the client's window)."""
        raise NotImplementedError

    async def send_file(self, fd: int, offset: int, count: int, more_body: bool) -> None:
        """Send ``count`` bytes of the open file ``fd`` from ``offset`` as the next part of
        the body (with the head before the first). Raises ClientDisconnected if the client
        goes, OSError (``files.FileChanged`` for a file that shrank) if the file fails."""
        await self.send_file_chunks(fd, offset, count, more_body)

    def send_trailers(self, fields: dict[str, Any]) -> bool:
        """Send an ``http.response.trailers``; whether it was the last."""
        raise NotImplementedError

    def send_early_hint(self, fields: dict[str, Any]) -> None:
        """Send an ``http.response.early_hint`` as a 103 (RFC 8297)."""
        raise NotImplementedError

    def send_continue(self) -> None:
        """Tell a client that waits for it to send the body (RFC 9110 §10.1.1)."""

    def send_error_response(self, status: int) -> None:
        """Answer with a short, fixed response of ``status`` instead of the app's."""
        raise NotImplementedError

    def fail_response(self) -> None:
        """The app's response went wrong: 500 if none of it was sent, else abort."""
        raise NotImplementedError

    def abort(self) -> None:
        """End the response abruptly: the client must not take it as complete."""
        raise NotImplementedError

    def response_finished(self) -> None:
        """The whole response has been sent (after the access log)."""

    def body_taken(self, more_body: bool) -> None:
        """``receive()`` handed the app the body received so far: make room for more."""

    def wait_started(self) -> None:
        """``receive()`` or ``send()`` began waiting on the client."""

    def app_done(self) -> None:
        """The app has returned or raised: its task is over."""


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
