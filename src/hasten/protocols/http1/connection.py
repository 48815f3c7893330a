"""HTTP/1.1 over httptools: the request hot path.

This file deliberately fuses the wire protocol with asyncio (STYLE rule 1's exception):
httptools (llhttp) is already a C state machine fed with bytes, and routing its callbacks
straight into the request cycle, with no intermediate event objects, is what makes the path
from ``data_received`` to ``transport.write`` short. Read it top to bottom:

``H1Connection.data_received`` feeds the parser; the parser's callbacks build a
``RequestCycle`` (cycle.py) per request; once the bytes at hand are parsed the next
queued cycle's app is started as a task; the app's ``send()`` serialises the
response.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Any, Final, cast

import httptools

from hasten.asgi import (
    HTTPRequestError,
    plain_response,
)
from hasten.logs import error_logger
from hasten.protocols.exchange import FILE_EXTENSIONS, at_capacity, http_scope, start_app_task
from hasten.protocols.flow import PAUSED_FOR_BODY, PAUSED_FOR_PIPELINE, FlowControl
from hasten.protocols.http1.checks import (
    CHECKED_FIELDS,
    absolute_form_authority,
    check_fields,
    field_limit_error,
    known_target,
    known_valid_host,
    split_target,
)
from hasten.protocols.http1.cycle import TURN_END_BATCH, RequestCycle, end_turn
from hasten.state import ServerState
from hasten.tls import tls_scope_extension

# RequestCycle is part of this protocol's interface (upgrade handlers receive one).
__all__ = ["HTTP2_PREFACE", "H1Connection", "RequestCycle"]

HTTP2_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# The name of the task that runs the app for one HTTP/1.1 request.
REQUEST_TASK_NAME: Final = "hasten.http1.request"
# llhttp's error once it has read a whole, valid HTTP/2 preface (HPE_PAUSED_H2_UPGRADE).
_PAUSED_AT_HTTP2_PREFACE: Final = "Pause on PRI/Upgrade"
# What ``H1Connection.headers`` holds between requests; never appended to, since on_url,
# the first callback of every head, gives each request a list of its own.
NO_FIELDS: Final[list[tuple[bytes, bytes]]] = []
# What ``H1Connection.pipeline`` holds while no request waits; on_headers_complete, which
# queues every request, replaces it rather than append to it.
NO_REQUESTS: Final[list[RequestCycle]] = []
# llhttp's error for a well-formed version other than 0.9, 1.0, 1.1 and 2.0 (HTTP/1.2, 9.9).
_UNSUPPORTED_VERSION: Final = "Invalid HTTP version"


class H1Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: parser callbacks in, request cycles out, in order.

    ``pipeline`` holds parsed requests whose app has not started; ``cycle`` is the request
    being answered. Apps start once the bytes at hand are parsed, so a request that arrived
    whole meets an app whose first ``receive()`` returns at once.
    """

    __slots__ = (
        "awaits_turn_end",
        "body_budget",
        "body_cycle",
        "client",
        "closing",
        "cycle",
        "flow",
        "fresh",
        "head_bytes",
        "head_data",
        "head_size",
        "head_started",
        "headers",
        "held_output",
        "idle_since",
        "limits",
        "lone_host",
        "parser",
        "pending_error",
        "pipeline",
        "priming_parser",
        "reading_head",
        "received",
        "scheme",
        "server",
        "stalled_since",
        "state",
        "tls_extension",
        "trailer_fields",
        "transport",
        "url",
    )

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.cycle: RequestCycle | None = None
        self.body_cycle: RequestCycle | None = None
        # A list, not a deque: it rarely holds more than one request, and an empty deque
        # is large. Empty, it is the shared NO_REQUESTS: no idle connection holds a list.
        self.pipeline: list[RequestCycle] = NO_REQUESTS
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = NO_FIELDS
        self.closing = False
        # Output waiting for the end of the loop turn (see write_at_turn_end), and whether
        # the connection is in state.turn_end.
        self.held_output = b""
        self.awaits_turn_end = False
        self.priming_parser = False
        self.pending_error = 0
        # The request's Host while it is the only field check_fields reads; b"" once
        # another such field (or a second Host) arrived; None before any.
        self.lone_host: bytes | None = None
        self.idle_since = 0.0
        self.limits = state.request_limits
        # Request-head bookkeeping for the limits and the slowloris timeout: bytes read while
        # a head was incomplete, bytes of its parsed fields, and when a tick first saw it.
        self.reading_head = False
        self.head_bytes = 0
        self.head_size = 0
        self.head_started = 0.0
        self.trailer_fields = 0
        self.body_budget: int | None = None
        self.received = False
        self.stalled_since = 0.0
        self.head_data: bytes | None = None
        # No request head has been read yet: only now may the HTTP/2 preface arrive.
        self.fresh = True

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports don't subclass asyncio.Transport, so no isinstance() here.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.flow = FlowControl(transport)
        transport.set_write_buffer_limits(high=self.state.limit_write_buffer)
        self.parser = httptools.HttpRequestParser(self)
        # Addresses are looked up once per connection, not once per request.
        self.client, self.scheme, self.tls_extension = connection_origin(self.state, transport)
        self.server = server_address(transport.get_extra_info("sockname"))
        self.idle_since = self.state.loop.time()
        self.state.connections.add(self)
        if self.state.shutting_down:
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        if self.held_output:
            self.held_output = b""
        self.flow.connection_lost()
        self._drop_requests()

    def eof_received(self) -> bool:
        # Returning False closes the transport: what is held must go out before that.
        self.write_held_output()
        body_cycle = self.body_cycle
        if body_cycle is not None:
            # The request ended before its body did: it is incomplete (RFC 9112 §6.3).
            body_cycle.client_gone()
            return False
        if self.cycle is not None or self.pipeline:
            # Half-close after a complete request: answer it, then close (RFC 9112 §9.6).
            # An app waiting for more than the body learns that nothing more will come.
            self.closing = True
            if self.cycle is not None:
                self.cycle.client_finished_sending()
            for queued in self.pipeline:
                queued.client_finished_sending()
            return True
        return False

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def data_received(self, data: bytes) -> None:
        self.idle_since = 0.0
        self.received = True
        if self.reading_head:
            self.head_bytes += len(data)
        elif self.body_cycle is None:
            # Between messages: a request line may start here (see request_line_version).
            self.head_data = data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade_requested(data[upgrade.args[0] :])
        except httptools.HttpParserError as exc:
            self._parse_failed(exc, data)
        if self.reading_head and self.head_bytes > self.limits.limit_request_headers_size:
            # httptools buffers an unfinished field whole: bound the head before it is parsed.
            error_logger.debug("Refused request: head or trailer section larger than its limit")
            self.reject(431)
        if self.cycle is None and (self.pipeline or self.pending_error):
            self._start_next()

    def _parse_failed(self, exc: httptools.HttpParserError, data: bytes) -> None:
        """The parser refused ``data``: answer with the status it calls for, or switch."""
        if self._switched_to_http2(exc, data):
            return
        cause = exc.__context__
        if isinstance(cause, HTTPRequestError):
            error_logger.debug("Refused request: %s", cause.reason)
            self.reject(cause.status)
        else:
            error_logger.debug("Malformed HTTP request: %s", exc)
            # RFC 9110 §15.6.6: a well-formed version the server does not speak gets 505.
            self.reject(505 if str(exc) == _UNSUPPORTED_VERSION else 400)

    def _switched_to_http2(self, exc: httptools.HttpParserError, data: bytes) -> bool:
        """HTTP/2 with prior knowledge (RFC 9113 §3.3): llhttp stops with an error at the
        end of the connection preface; if it opened the connection, HTTP/2 takes over."""
        handler = self.state.protocols.http2_preface
        if handler is None or not self.fresh:
            # RFC 9113 §3.3: the preface opens the connection; after a request it is a
            # malformed HTTP/1.1 request (400), never a switch.
            return False
        if str(exc) != _PAUSED_AT_HTTP2_PREFACE:
            return False
        # This chunk starts with the rest of the preface (all of it, unless the preface
        # was split across reads); the parser stopped right after it.
        for split in range(len(HTTP2_PREFACE)):
            tail = HTTP2_PREFACE[split:]
            if data.startswith(tail):
                handler(self, data[len(tail) :])
                return True
        return False

    # -- switching protocols (the handlers of ServerState.protocols) -------------------------

    def can_switch_protocols(self) -> bool:
        """Whether the request asking to switch protocols is the connection's only one: no
        response is owed before it, so the connection may change hands now."""
        return self.cycle is None and len(self.pipeline) == 1

    def refuse_pipelined_upgrade(self, cycle: RequestCycle, status: int) -> None:
        """Answer ``cycle``, an upgrade request pipelined behind others, with ``status``
        after their responses, in order; the bytes after it cannot be HTTP, so the
        connection then closes."""
        self.pipeline.remove(cycle)
        self.body_cycle = None
        self.reject(status)

    def hand_over(self) -> None:
        """Stop serving HTTP/1.1: no more requests are read or answered here, and the
        connection no longer counts as the server's. Whoever called this now owns the
        transport (to answer the upgrade request and close, or to give it to
        ``hand_over_to``). Calling it again does nothing more."""
        self.write_held_output()
        self.state.connections.discard(self)
        self.closing = True
        self.pipeline.clear()
        self.body_cycle = None

    def hand_over_to(
        self, take_over: Callable[[asyncio.BaseTransport, bytes], None], rest: bytes
    ) -> None:
        """Give the transport to another protocol: ``take_over(transport, rest)`` makes it
        the transport's protocol, with ``rest`` the bytes read after the last HTTP/1.1 one."""
        self.hand_over()
        take_over(self.transport, rest)

    # -- output ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write ``data`` now, after any output held for the end of the loop turn."""
        if self.held_output:
            self.writelines((data,))
        else:
            self.transport.write(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        """Write ``parts`` now, without joining them, after any held output."""
        held = self.held_output
        if held:
            self.held_output = b""
            parts = (held, *parts)
        self.transport.writelines(parts)

    def write_at_turn_end(self, data: bytes) -> None:
        """Write a complete response once the loop turn's other apps have run.

        Each write to a socket whose reader sleeps wakes that reader up, and on a loaded
        server with a local peer (a proxy, a sidecar, a load generator) that wake-up costs
        as much as the write: perf showed it at an eighth of the server's time behind a
        FastAPI app. Writes that leave close together wake the peer once. The batch is
        bounded (``TURN_END_BATCH``) so that early responses of a long turn do not wait
        for all of it.
        """
        held = self.held_output
        if held:
            self.held_output = held + data
            return
        if not self.awaits_turn_end:
            self.flush_at_turn_end()
        self.held_output = data
        if len(self.state.turn_end) >= TURN_END_BATCH:
            end_turn(self.state.turn_end)

    def flush_at_turn_end(self) -> None:
        """Have ``end_turn`` write what this connection holds at the end of the loop turn,
        held output and a held-back head alike."""
        self.awaits_turn_end = True
        turn_end = self.state.turn_end
        if not turn_end:
            self.state.loop.call_soon(end_turn, turn_end)
        turn_end.append(self)

    def write_held_output(self) -> None:
        """Write the held response now (before the transport closes or changes hands)."""
        held = self.held_output
        if held:
            self.held_output = b""
            if not self.transport.is_closing():
                self.transport.write(held)

    # -- parser callbacks (httptools) -------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        # llhttp requires a target, so this is the first callback of every request: it
        # starts the head's bookkeeping too, which spares an on_message_begin call per
        # request. (on_headers_complete leaves url and headers empty for the next one.)
        if self.url:
            url = self.url + url
        else:
            self.reading_head = True
            self.head_bytes = 0
            self.head_size = 0
            self.headers = []
        self.url = url
        if len(url) > self.limits.limit_request_line:
            # RFC 9112 §3: a target longer than the server parses gets 414.
            raise HTTPRequestError(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.body_cycle is not None or not self.reading_head:
            # A trailer field: never merged into the request's header fields (RFC 9110
            # §6.5.1), where it could change framing, Host or credentials. (Nor is a field
            # outside a head, which would land in the shared NO_FIELDS.)
            if self.reading_head:
                self._count_trailer_field(len(name) + len(value))
            return
        headers = self.headers
        lowered = name.lower()
        headers.append((lowered, value))
        if lowered in CHECKED_FIELDS:
            self.lone_host = value if lowered == b"host" and self.lone_host is None else b""
        field_size = len(name) + len(value)
        self.head_size += field_size
        limits = self.limits
        if (
            len(headers) > limits.limit_request_fields
            or field_size > limits.limit_request_field_size
            or self.head_size > limits.limit_request_headers_size
        ):
            raise field_limit_error(len(headers), field_size, limits)

    def _count_trailer_field(self, field_size: int) -> None:
        """RFC 9112 §7.1.2: the trailer section is bounded by the head's limits."""
        self.trailer_fields += 1
        self.head_size += field_size
        limits = self.limits
        if (
            self.trailer_fields > limits.limit_request_fields
            or field_size > limits.limit_request_field_size
            or self.head_size > limits.limit_request_headers_size
        ):
            raise field_limit_error(self.trailer_fields, field_size, limits)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.head_started = 0.0
        self.fresh = False
        if self.priming_parser:
            return
        parser = self.parser
        method = parser.get_method()
        if method == b"CONNECT":
            # An origin server is not a tunnel (RFC 9110 §9.3.6): refuse, and never read
            # what follows as HTTP.
            raise HTTPRequestError(501, "CONNECT is not supported")
        url = self.url
        head_data = self.head_data
        self.head_data = None  # this request's; a pipelined one asks httptools
        http_version = (
            head_data is not None and request_line_version(head_data, method, url)
        ) or parser.get_http_version()
        if http_version not in {"1.1", "1.0"}:
            if http_version[0] >= "2":
                raise HTTPRequestError(505, f"HTTP/{http_version} is not supported")
            raise HTTPRequestError(400, f"HTTP/{http_version} is not supported")
        headers = self.headers
        # The scope owns these now; an idle connection keeps no request's head alive, nor
        # an empty list for the next one (on_url makes it).
        self.url = b""
        self.headers = NO_FIELDS
        raw_path, query_string, path = known_target(url) or split_target(method, url)
        lone_host = self.lone_host
        self.lone_host = None
        if lone_host and url[:1] == b"/" and known_valid_host(lone_host):
            # The usual request: check_fields, a call and a walk over every field, would
            # find nothing.
            expects_continue = False
        else:
            expects_continue = check_fields(
                headers,
                http_version,
                self.limits,
                None if url[:1] == b"/" else absolute_form_authority(url),
            )
        scope = http_scope(
            self.state,
            http_version,
            self.scheme,
            method.decode("ascii"),
            path,
            raw_path,
            query_string,
            headers,
            self.client,
            self.server,
            FILE_EXTENSIONS.copy()
            if self.tls_extension is None
            else {**FILE_EXTENSIONS, "tls": self.tls_extension},
        )
        cycle = RequestCycle(self, scope, parser.should_keep_alive() and not self.closing)
        if expects_continue:
            # RFC 9110 §10.1.1: an HTTP/1.0 client's expectation is ignored.
            cycle.expect_continue = http_version == "1.1"
        if len(self.pipeline) >= self.limits.limit_pipelined_requests:
            # Each queued request holds its scope: bound what a pipelining client can make
            # the server buffer ahead of the app.
            raise HTTPRequestError(429, "too many pipelined requests")
        self.body_budget = self.limits.limit_request_body
        self.body_cycle = cycle
        if self.cycle is not None or self.pipeline:
            # Pipelined behind a request still being answered: stop reading until it's done.
            self.flow.pause_reading(PAUSED_FOR_PIPELINE)
        pipeline = self.pipeline
        if pipeline is NO_REQUESTS:
            self.pipeline = [cycle]
        else:
            pipeline.append(cycle)

    def on_chunk_header(self) -> None:
        # RFC 9112 §7.1.2: a trailer section, read like a head, follows the last chunk. Its
        # size is not known here, so the head's limits and deadline apply to what follows
        # every chunk header until its data arrives (on_body).
        self.reading_head = True
        self.head_bytes = 0
        self.head_size = 0
        self.head_started = 0.0
        self.trailer_fields = 0

    def on_body(self, body: bytes) -> None:
        self.reading_head = False  # the chunk header before this was not the last one
        budget = self.body_budget
        if budget is not None:
            # Content-Length was checked before the body; this bounds a chunked one.
            budget -= len(body)
            if budget < 0:
                raise HTTPRequestError(413, "request body too large")
            self.body_budget = budget
        body_cycle = self.body_cycle
        if body_cycle is not None:
            body_cycle.feed_body(body)

    def on_message_complete(self) -> None:
        self.reading_head = False  # a trailer section ends here
        body_cycle = self.body_cycle
        if body_cycle is not None:
            body_cycle.end_body()
            self.body_cycle = None
            if body_cycle.response_complete and self.cycle is None and not self.pipeline:
                # The unread body of an answered request is drained: the connection idles.
                self.idle_since = self.state.loop.time()

    def _upgrade_requested(self, rest: bytes) -> None:
        """The parser stopped at the head of a request asking to switch protocols."""
        cycle = self.pipeline[-1] if self.pipeline else None
        if cycle is None:
            return
        handler = self.state.protocols.upgrades.get(_upgrade_token(cycle.scope["headers"]))
        if handler is not None and handler(self, cycle, rest):
            return
        # No protocol to switch to: RFC 9110 §7.8 lets the server ignore Upgrade and answer
        # over HTTP/1.1. llhttp leaves the request's body unparsed, so a fresh parser is
        # primed with a head carrying only that request's framing and then reads the body,
        # and whatever follows it, as usual.
        framing = _body_framing(cycle.scope["headers"])
        if framing is not None:
            cycle.body_complete = False
            self.body_cycle = cycle
            self.parser = httptools.HttpRequestParser(self)
            self.priming_parser = True
            try:
                self.parser.feed_data(b"PUT / HTTP/1.1\r\n%b\r\n\r\n" % framing)
            finally:
                self.priming_parser = False
                self.url = b""  # the primer's target
        if rest:
            # What followed the upgrade request in the same read, as if read on its own.
            self.data_received(rest)

    # -- request dispatch -------------------------------------------------------------------

    def _start_next(self) -> None:
        """Start queued requests, one at a time, while earlier ones finish at once."""
        pipeline = self.pipeline
        state = self.state
        while self.cycle is None and pipeline:
            cycle = self.cycle = pipeline.pop(0)
            if state.access_log:
                cycle.start_time = perf_counter()
            if state.limit_concurrency is not None and at_capacity(state):
                cycle.send_error_response(503)
                continue
            cycle.task = start_app_task(state, cycle.run(), REQUEST_TASK_NAME)
        if not pipeline:
            self.pipeline = NO_REQUESTS
            if self.flow.read_pause_reasons:
                self.flow.resume_reading(PAUSED_FOR_PIPELINE)
            if self.pending_error and self.cycle is None:
                self.reject(self.pending_error)

    def response_finished(self, cycle: RequestCycle) -> None:
        """Called when a response has been completely written."""
        if cycle is not self.cycle:
            return
        self.cycle = None
        if cycle.close_after or self.closing:
            self.close_transport()
            return
        if not cycle.body_complete:
            # The rest of the body is read and dropped (RequestCycle.feed_body); the next
            # request starts once it has ended.
            cycle.body.clear()
            cycle.body_size = 0
            self.flow.resume_reading(PAUSED_FOR_BODY)
            return
        if self.pipeline or self.pending_error:
            self._start_next()
            return
        self.idle_since = self.state.loop.time()

    # -- errors and shutdown ----------------------------------------------------------------

    def reject(self, status: int) -> None:
        """Answer a request the parser refused, after any responses still owed, then close."""
        self.reading_head = False  # nothing more of this connection is parsed
        broken = self.body_cycle
        self.body_cycle = None
        if broken is not None:
            # The request's head was fine but its body is not: it cannot be answered.
            if broken.response_complete:
                # Its response is out; what broke is the body being drained after it.
                self.close_transport()
                return
            if broken is self.cycle:
                if broken.head_pending or not broken.response_started:
                    broken.head_pending = False
                    self.write(plain_response(status, head=broken.is_head))
                # The app's receive() now says http.disconnect.
                self.close_transport()
                return
            self.pipeline.remove(broken)
        if self.cycle is not None or self.pipeline:
            self.pending_error = status
            self.flow.pause_reading(PAUSED_FOR_PIPELINE)
            return
        if not self.transport.is_closing():
            self.write(plain_response(status))
        self.close_transport()

    def close_transport(self) -> None:
        """Close the connection; requests not yet answered are dropped."""
        self.write_held_output()
        if not self.transport.is_closing():
            self.transport.close()
        self._drop_requests()

    def _drop_requests(self) -> None:
        self.closing = True
        self.pending_error = 0
        if self.cycle is not None:
            self.cycle.client_gone()
            self.cycle = None
        for queued in self.pipeline:
            queued.client_gone()
        self.pipeline.clear()
        self.body_cycle = None

    def abort(self) -> None:
        if self.held_output:
            self.held_output = b""
        self.transport.abort()

    def shutdown(self) -> None:
        """Graceful shutdown: close when idle, else after the response in progress."""
        self.closing = True
        if self.cycle is None and not self.pipeline:
            self.close_transport()

    def close_if_idle_since_before(self, deadline: float) -> None:
        """The server's periodic tick: close a keep-alive connection idle since before
        ``deadline``, refuse a client too slow sending its request, and drop one that stopped
        reading its response."""
        if self.idle_since and self.idle_since <= deadline and self.cycle is None:
            self.close_transport()
            return
        # Bytes arrived since the connection was last idle, yet no request is under way:
        # empty lines before a request line (RFC 9112 §2.2), which must not be a way to
        # stay connected forever either.
        between_requests = not (self.idle_since or self.cycle or self.pipeline)
        if self.reading_head or between_requests or self.body_cycle is not None:
            self._enforce_read_timeouts()
        state = self.state
        if self.flow.write_stalled_for(state.timeout_response_write, state.loop.time()):
            error_logger.debug("Client stopped reading the response; closing the connection.")
            self.abort()

    def _enforce_read_timeouts(self) -> None:
        if self.transport.is_closing() or not self.transport.is_reading():
            # Reading is paused because the app is behind, not the client.
            self.stalled_since = 0.0
            return
        now = self.state.loop.time()
        if self.reading_head or self.body_cycle is None:
            # Slowloris (RFC 9112 §9.5 leaves the timeout to the server): a head, or a
            # trailer section, has a deadline counted from the first tick that saw it,
            # never extended by a byte.
            if not self.head_started:
                self.head_started = now
            elif now - self.head_started >= self.state.timeout_request_header:
                error_logger.debug("Request head not received in time; answering 408.")
                self.reject(408)
            return
        # A body that stalls; the clock restarts whenever bytes arrive.
        if self.received or not self.stalled_since:
            self.received = False
            self.stalled_since = now
        elif now - self.stalled_since >= self.state.timeout_request_body:
            error_logger.debug("Request body stalled; answering 408.")
            self.reject(408)


def request_line_version(data: bytes, method: bytes, target: bytes) -> str | None:
    """The version of a request whose line starts ``data``, if it is 1.1 or 1.0 and the line
    is written the usual way: ``method SP target SP version CRLF``.

    httptools' get_http_version() formats a new string on every call; this reads the
    version from the bytes llhttp has accepted. Where the line is written
    otherwise (leading empty lines, more than one space, a method split across reads), the
    bytes at the expected place are not " HTTP/1.x CRLF" and the caller asks httptools.
    """
    end = len(method) + len(target) + 12  # "method SP target" and " HTTP/1.x\r\n"
    if data[: len(method)] != method or len(data) < end:
        return None
    ending = data[end - 11 : end]
    if ending == b" HTTP/1.1\r\n":
        return "1.1"
    if ending == b" HTTP/1.0\r\n":
        return "1.0"
    return None


def _ip_address(address: Any) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        # Interned: the connections of one client (or one proxy) share its host string.
        return (sys.intern(str(address[0])), int(address[1]))
    return None


def connection_origin(
    state: ServerState, transport: asyncio.BaseTransport
) -> tuple[tuple[str, int] | None, str, dict[str, Any] | None]:
    """A connection's client, scheme and ASGI ``tls`` extension: its own, or the ones a
    PROXY protocol header named (``--proxy-protocol``)."""
    client = _ip_address(transport.get_extra_info("peername"))
    ssl_object = transport.get_extra_info("ssl_object")
    origins = state.proxied_origins
    if origins is not None:
        origin = origins.get(transport if ssl_object is None else ssl_object)
        if origin is not None:
            client, tls = origin
            if ssl_object is None:
                # The proxy terminated the client's TLS (PP2_TYPE_SSL) if tls is given.
                return client, "http" if tls is None else "https", tls
    if ssl_object is not None:
        return client, "https", tls_scope_extension(ssl_object)
    return client, "http", None


# The ASGI ``server`` of each listening address, one tuple shared by all its connections:
# memory per idle keep-alive connection. Bounded, though a server listens on few addresses.
_server_addresses: Final[dict[Any, tuple[str, int | None] | None]] = {}


def server_address(sockname: Any) -> tuple[str, int | None] | None:
    """The scope's ``server`` for a socket's local address (``(path, None)`` for a Unix
    socket, as ASGI says)."""
    if sockname in _server_addresses:
        return _server_addresses[sockname]
    address = (sockname, None) if isinstance(sockname, str) else _ip_address(sockname)
    if len(_server_addresses) >= 64:
        _server_addresses.clear()
    _server_addresses[sockname] = address
    return address


def _upgrade_token(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The first protocol named by the request's ``Upgrade`` header, lower-cased."""
    for name, value in headers:
        if name == b"upgrade":
            return value.split(b",", 1)[0].strip().lower()
    return b""


def _body_framing(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The framing header line of a request that has a body, else ``None``."""
    for name, value in headers:
        if name == b"transfer-encoding":
            return b"transfer-encoding: " + value
        if name == b"content-length" and value.strip(b" \t") not in (b"0", b""):
            return b"content-length: " + value
    return None
