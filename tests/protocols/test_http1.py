"""HTTP/1.1 message exchange against a real server, in raw bytes: keep-alive, pipelining,
HTTP/1.0, request bodies, 100-continue, HEAD, response framing, Connection, default headers,
half-close, unsupported upgrades, CONNECT."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import email.utils
import socket
import time
import types
from typing import Any

import pytest

from tests.harness import request, run_server
from tests.protocols.context_app import context_reporter
from tests.protocols.http1_apps import (
    echo_body,
    echo_path,
    hello,
    recorder,
    stream,
    wait_for,
)

LOOPS = ["asyncio", "uvloop"]


# -- keep-alive and pipelining -------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_keep_alive_serves_several_requests_on_one_connection(loop: str) -> None:
    with run_server(echo_path, loop=loop) as server, server.connect() as client:
        for path in ("/a", "/b", "/c"):
            client.send(request(path=path))
            response = client.read_response()
            assert response.status == 200
            assert response.body == path.encode()
            assert response.header("connection") is None
        assert not client.is_closed(timeout=0.1)


@pytest.mark.parametrize("loop", LOOPS)
def test_pipelined_requests_are_answered_in_order(loop: str) -> None:
    with run_server(echo_path, loop=loop) as server, server.connect() as client:
        client.send(request(path="/1") + request(path="/2") + request(path="/3"))
        assert [client.read_response().body for _ in range(3)] == [b"/1", b"/2", b"/3"]


@pytest.mark.parametrize("loop", LOOPS)
def test_pipelined_requests_wait_for_a_slow_first_handler(loop: str) -> None:
    with run_server(echo_path, loop=loop) as server, server.connect() as client:
        client.send(request(path="/slow") + request(path="/fast") + request(path="/last"))
        assert [client.read_response().body for _ in range(3)] == [b"/slow", b"/fast", b"/last"]


@pytest.mark.parametrize("loop", LOOPS)
def test_long_pipeline_with_slow_and_fast_handlers_stays_in_order(loop: str) -> None:
    paths = ["/slow" if n % 20 == 0 else f"/{n}" for n in range(60)]
    with run_server(echo_path, loop=loop) as server, server.connect() as client:
        client.send(b"".join(request(path=path) for path in paths))
        assert [client.read_response().body.decode() for _ in paths] == paths


def test_pipelined_requests_with_bodies_keep_their_bodies() -> None:
    with run_server(echo_body) as server, server.connect() as client:
        client.send(request("POST", body=b"first") + request("POST", body=b"second"))
        assert client.read_response().body == b"first"
        assert client.read_response().body == b"second"


def test_pipelined_request_split_across_sends_is_answered() -> None:
    with run_server(echo_path) as server, server.connect() as client:
        data = request(path="/slow") + request(path="/next")
        client.send(data[:30])
        client.send(data[30:70])
        client.send(data[70:])
        assert client.read_response().body == b"/slow"
        assert client.read_response().body == b"/next"


# -- HTTP/1.0 ------------------------------------------------------------------------------


def test_http10_request_is_answered_then_closed() -> None:
    with run_server(hello) as server, server.connect() as client:
        client.send(request(version="1.0"))
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"Hello, world!"
        assert response.header("connection") == "close"
        assert client.is_closed()


def test_http10_keep_alive_when_asked() -> None:
    with run_server(hello) as server, server.connect() as client:
        for _ in range(2):
            client.send(request(version="1.0", headers={"Connection": "keep-alive"}))
            response = client.read_response()
            assert response.body == b"Hello, world!"
            assert response.header("connection") == "keep-alive"
        assert not client.is_closed(timeout=0.1)


def test_http10_streamed_response_is_close_delimited_not_chunked() -> None:
    with run_server(stream) as server, server.connect() as client:
        client.send(request(version="1.0", headers={"Connection": "keep-alive"}))
        response = client.read_response()
        assert response.header("transfer-encoding") is None
        assert response.header("content-length") is None
        assert response.header("connection") == "close"
        assert response.body == b"one,two,three"


def test_http10_scope_has_http_version_10() -> None:
    seen, app = recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(request(version="1.0"))
        client.read_response()
    assert seen[0]["http_version"] == "1.0"


# -- request bodies ------------------------------------------------------------------------


def body_recorder() -> tuple[list[Any], Any]:
    """An app that records each receive() message as it arrives and answers the body size."""
    messages: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    return messages, app


def test_content_length_body_reaches_the_app() -> None:
    with run_server(echo_body) as server, server.connect() as client:
        client.send(request("POST", body=b"x" * 1000))
        assert client.read_response().body == b"x" * 1000


def test_chunked_body_reaches_the_app() -> None:
    with run_server(echo_body) as server, server.connect() as client:
        client.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        assert client.read_response().body == b"hello world"


def test_body_is_streamed_to_the_app_in_several_messages() -> None:
    messages, app = body_recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabcde")
        # The first part reaches the app before the rest has been sent.
        wait_for(lambda: messages)
        client.send(b"fghij")
        assert client.read_response().body == b"10"
    assert messages == [
        {"type": "http.request", "body": b"abcde", "more_body": True},
        {"type": "http.request", "body": b"fghij", "more_body": False},
    ]


def test_chunked_body_sent_piecemeal_arrives_in_order_with_more_body_flags() -> None:
    messages, app = body_recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for count in range(1, 4):
            client.send(b"4\r\nabcd\r\n")
            wait_for(lambda count=count: len(messages) == count)
        client.send(b"0\r\n\r\n")
        assert client.read_response().body == b"12"
    assert [m["more_body"] for m in messages] == [True, True, True, False]
    assert b"".join(m["body"] for m in messages) == b"abcd" * 3


def test_empty_body_gives_one_message_without_more_body() -> None:
    messages, app = body_recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(request())
        assert client.read_response().body == b"0"
    assert messages == [{"type": "http.request", "body": b"", "more_body": False}]


def test_unread_body_after_an_early_response_is_drained_and_the_connection_kept() -> None:
    with run_server(echo_path) as server, server.connect() as client:
        client.send(b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabcde")
        response = client.read_response()
        assert response.body == b"/early"
        assert response.header("connection") is None
        # The rest of the body is dropped, never parsed as a request.
        client.send(b"GET /" + request(path="/next"))
        assert client.read_response().body == b"/next"
        assert not client.is_closed(timeout=0.1)


def test_huge_unread_body_after_an_early_response_closes_the_connection() -> None:
    seen, app = recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n")
        assert client.read_response().body == b"ok"
        try:
            for _ in range(64):
                client.send(b"GET /smuggled HTTP/1.1\r\n\r\n" * 2048)
        except OSError:
            pass  # the server closed the connection, as it should
        assert client.is_closed(timeout=5)
    assert [scope["path"] for scope in seen] == ["/"]


def test_limit_body_drain_bounds_what_is_read_after_an_early_response() -> None:
    with run_server(echo_path, limit_body_drain=10) as server, server.connect() as client:
        client.send(b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        assert client.read_response().body == b"/early"
        client.send(b"x" * 20)
        assert client.is_closed()


# -- Expect: 100-continue -----------------------------------------------------------------


def test_100_continue_is_sent_when_the_app_reads_the_body() -> None:
    with run_server(echo_body) as server, server.connect() as client:
        client.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = client.read_response()
        assert interim.status == 100
        client.send(b"hello")
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"hello"


def test_100_continue_is_not_sent_when_the_app_answers_without_reading() -> None:
    with run_server(hello) as server, server.connect() as client:
        client.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"Hello, world!"
        # The unread body must never be parsed as a request: the connection closes.
        assert response.header("connection") == "close"
        assert client.is_closed()
        assert b"100 Continue" not in response.raw_head


def test_100_continue_is_not_sent_to_http10_clients() -> None:
    with run_server(echo_body) as server, server.connect() as client:
        client.send(
            b"POST / HTTP/1.0\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert client.is_closed(timeout=0.2) is False
        assert client.buffer == b""
        client.send(b"hello")
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"hello"


def test_100_continue_is_not_sent_when_the_body_already_arrived() -> None:
    with run_server(echo_body) as server, server.connect() as client:
        client.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
        )
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"hello"


# -- HEAD and response framing ------------------------------------------------------------


def test_head_keeps_headers_and_writes_no_body() -> None:
    with run_server(hello) as server, server.connect() as client:
        client.send(request("HEAD") + request("GET"))
        head = client.read_response(head_request=True)
        assert head.status == 200
        assert head.header("content-length") == "13"
        get = client.read_response()
        assert get.body == b"Hello, world!"


def test_head_with_streamed_response_writes_no_body() -> None:
    with run_server(stream) as server, server.connect() as client:
        client.send(request("HEAD") + request("GET", path="/next"))
        head = client.read_response(head_request=True)
        assert head.status == 200
        get = client.read_response()
        assert get.body == b"one,two,three"


def test_response_with_content_length_is_sent_as_is() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]}
        )
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})

    with run_server(app, lifespan="off") as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.header("content-length") == "6"
        assert not response.chunked
        assert response.body == b"abcdef"
        client.send(request())
        assert client.read_response().body == b"abcdef"


def test_streamed_response_without_length_is_chunked() -> None:
    with run_server(stream) as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.chunked
        assert response.header("content-length") is None
        assert response.body == b"one,two,three"
        client.send(request())
        assert client.read_response().body == b"one,two,three"


def test_single_body_message_gets_a_content_length() -> None:
    with run_server(hello) as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.header("content-length") == "13"
        assert response.header("transfer-encoding") is None


def test_messages_that_are_mappings_but_not_dicts_are_served() -> None:
    # ASGI says dicts; hasten reads dicts fastest and still takes any Mapping.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        start = {"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]}
        await send(types.MappingProxyType(start))
        await send(collections.UserDict({"type": "http.response.body", "body": b"mapped"}))

    with run_server(app) as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
    assert (response.status, response.header("x-a"), response.body) == (201, "1", b"mapped")


class WriteCounter:
    """Stands in for a connection's transport and counts the writes made through it."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def writelines(self, parts: Any) -> None:
        self.writes.append(b"".join(parts))
        self.transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


@pytest.mark.parametrize("loop", LOOPS)
def test_small_response_leaves_in_one_write(loop: str) -> None:
    with run_server(hello, loop=loop) as server, server.connect() as client:
        state = server.server.state
        assert state is not None
        conn = wait_for(lambda: list(state.connections))[0]
        counter = conn.transport = WriteCounter(conn.transport)
        client.send(request())
        assert client.read_response().body == b"Hello, world!"
        assert len(counter.writes) == 1
        assert counter.writes[0].endswith(b"\r\n\r\nHello, world!")


def test_app_transfer_encoding_header_is_replaced_by_server_framing() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"transfer-encoding", b"chunked")],
            }
        )
        await send({"type": "http.response.body", "body": b"abc"})

    with run_server(app, lifespan="off") as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.headers_named("transfer-encoding") == []
        assert response.body == b"abc"


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_write_no_body(status: int) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with run_server(app, lifespan="off") as server, server.connect() as client:
        client.send(request() + request())
        first = client.read_response()
        assert first.status == status
        assert first.header("transfer-encoding") is None
        assert client.read_response().status == status


def test_304_with_content_length_keeps_the_header_and_the_connection() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"100"), (b"etag", b'"v1"')]
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    with run_server(app, lifespan="off") as server, server.connect() as client:
        client.send(request() + request())
        first = client.read_response()
        assert first.status == 304
        assert first.header("content-length") == "100"
        assert first.header("connection") is None
        assert client.read_response().status == 304
        assert not client.is_closed(timeout=0.1)


def test_asterisk_form_options_request_reaches_the_app() -> None:
    seen, app = recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.read_response().status == 200
    assert seen[0]["method"] == "OPTIONS"
    assert seen[0]["path"] == "*"


# -- Connection: close ---------------------------------------------------------------------


def test_client_connection_close_gets_one_response_then_fin() -> None:
    seen, app = recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(request(headers={"Connection": "close"}) + request(path="/never"))
        response = client.read_response()
        assert response.header("connection") == "close"
        assert client.is_closed()
    assert [scope["path"] for scope in seen] == ["/"]


@pytest.mark.parametrize("value", ["keep-alive, close", "CLOSE", "Close"])
def test_client_connection_close_variants_close(value: str) -> None:
    seen, app = recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(request(headers={"Connection": value}) + request(path="/never"))
        assert client.read_response().header("connection") == "close"
        assert client.is_closed()
    assert [scope["path"] for scope in seen] == ["/"]


def test_app_connection_close_closes_after_the_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"connection", b"close")]}
        )
        await send({"type": "http.response.body", "body": b"bye"})

    with run_server(app) as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.body == b"bye"
        assert response.headers_named("connection") == ["close"]
        assert client.is_closed()


# -- Date, Server and default headers ------------------------------------------------------


def test_date_and_server_headers_are_sent() -> None:
    with run_server(hello) as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.header("server") == "hasten"
        date = response.header("date")
        assert date is not None and date.endswith(" GMT")
        sent_at = email.utils.parsedate_to_datetime(date).timestamp()
        assert abs(sent_at - time.time()) < 3


def test_no_date_and_no_server_header_settings() -> None:
    with (
        run_server(hello, date_header=False, server_header=False) as server,
        server.connect() as client,
    ):
        client.send(request())
        response = client.read_response()
        assert response.header("server") is None
        assert response.header("date") is None


def test_default_headers_setting_adds_headers() -> None:
    with run_server(hello, headers=["X-A:1", "X-B: two"]) as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.header("x-a") == "1"
        assert response.header("x-b") == "two"


def test_app_server_and_date_headers_replace_the_defaults() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"Server", b"mine"), (b"date", b"yesterday"), (b"x-a", b"app")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    with run_server(app, headers=["X-A:1"]) as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.headers_named("server") == ["mine"]
        assert response.headers_named("date") == ["yesterday"]
        assert response.headers_named("x-a") == ["app"]


# -- half-close ----------------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_half_closed_client_still_gets_the_full_response(loop: str) -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(0.1)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late", "more_body": True})
        await send({"type": "http.response.body", "body": b" answer"})

    with run_server(slow, loop=loop) as server, server.connect() as client:
        client.send(request())
        client.sock.shutdown(socket.SHUT_WR)
        response = client.read_response()
        assert response.body == b"late answer"
        assert client.is_closed()


def test_half_closed_client_gets_all_pipelined_responses() -> None:
    with run_server(echo_path) as server, server.connect() as client:
        client.send(request(path="/slow") + request(path="/two"))
        client.sock.shutdown(socket.SHUT_WR)
        assert client.read_response().body == b"/slow"
        assert client.read_response().body == b"/two"
        assert client.is_closed()


# -- upgrades and CONNECT ------------------------------------------------------------------


def test_unsupported_upgrade_is_answered_as_plain_http() -> None:
    seen, app = recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(request(headers={"Connection": "Upgrade", "Upgrade": "foo"}))
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"ok"
        client.send(request(path="/after"))
        assert client.read_response().status == 200
    assert seen[0]["headers"][-1] == (b"upgrade", b"foo")
    assert seen[1]["path"] == "/after"


def test_unsupported_upgrade_followed_by_a_pipelined_request() -> None:
    with run_server(echo_path) as server, server.connect() as client:
        client.send(
            request(path="/up", headers={"Connection": "Upgrade", "Upgrade": "foo"})
            + request(path="/next")
        )
        assert client.read_response().body == b"/up"
        assert client.read_response().body == b"/next"


def test_h2c_upgrade_with_http2_settings_is_answered_not_hung() -> None:
    with run_server(hello) as server, server.connect() as client:
        client.send(
            request(
                headers={
                    "Connection": "Upgrade, HTTP2-Settings",
                    "Upgrade": "h2c",
                    "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA",
                }
            )
        )
        response = client.read_response()
        assert response.status in (101, 200)
        if response.status == 200:
            assert response.body == b"Hello, world!"


def test_unsupported_upgrade_with_body_delivers_the_body() -> None:
    with run_server(echo_body) as server, server.connect() as client:
        client.send(
            request(
                "POST",
                headers={"Connection": "Upgrade", "Upgrade": "foo"},
                body=b"the body",
            )
            + request("POST", path="/next", body=b"second")
        )
        assert client.read_response().body == b"the body"
        assert client.read_response().body == b"second"


def test_request_after_an_upgrade_with_a_body_keeps_its_own_target() -> None:
    # The body is read by a parser primed with a made-up head of its own: its target must
    # not leak into the next request's.
    with run_server(echo_path) as server, server.connect() as client:
        client.send(
            request(
                "POST", path="/up", headers={"Connection": "Upgrade", "Upgrade": "foo"}, body=b"x"
            )
            + request(path="/next?q=1")
        )
        assert client.read_response().body == b"/up"
        assert client.read_response().body == b"/next"


def test_request_line_split_inside_the_target_is_joined() -> None:
    with run_server(echo_path) as server, server.connect() as client:
        data = request(path="/a-long/path/split")
        for piece in (data[:3], data[3:9], data[9:20], data[20:]):
            client.send(piece)
            time.sleep(0.02)  # separate reads, so the target arrives in pieces
        assert client.read_response().body == b"/a-long/path/split"
        client.send(request(path="/second"))
        assert client.read_response().body == b"/second"


@pytest.mark.parametrize("body", [b"", b"h2c body"], ids=["without_body", "with_body"])
def test_h2c_upgrade_without_http2_settings_is_answered_as_http11(body: bytes) -> None:
    with run_server(echo_body) as server, server.connect() as client:
        client.send(
            request("POST", headers={"Connection": "Upgrade", "Upgrade": "h2c"}, body=body)
            + request("POST", path="/next", body=b"next")
        )
        first = client.read_response()
        assert first.status == 200
        assert first.body == body
        assert client.read_response().body == b"next"


def test_unsupported_upgrade_with_chunked_body_delivers_the_body() -> None:
    with run_server(echo_body) as server, server.connect() as client:
        client.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        assert client.read_response().body == b"abc"


def test_upgrade_with_body_sent_later_still_delivers_it() -> None:
    messages, app = body_recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
            b"Content-Length: 10\r\n\r\nhello"
        )
        wait_for(lambda: messages)
        client.send(b"world")
        assert client.read_response().body == b"10"
    assert b"".join(m["body"] for m in messages) == b"helloworld"


def test_connect_gets_501_and_close() -> None:
    seen, app = recorder()
    with run_server(app) as server, server.connect() as client:
        client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        response = client.read_response()
        assert response.status == 501
        assert response.header("connection") == "close"
        assert client.is_closed()
    assert seen == []


# -- the task that runs each request's app -----------------------------------------------------

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


@pytest.mark.parametrize("loop", LOOPS)
def test_each_request_runs_in_its_own_named_task_and_context(loop: str) -> None:
    seen: list[tuple[str, str, int]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        # What an earlier request set must not leak into this one (each task copies the
        # context of the server, not of the last request).
        before = REQUEST_ID.get()
        REQUEST_ID.set(scope["path"])
        task = asyncio.current_task()
        assert task is not None
        seen.append((task.get_name(), before, id(task)))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with run_server(app, loop=loop) as server, server.connect() as client:
        for path in ("/a", "/b"):
            client.send(request(path=path))
            assert client.read_response().status == 204
    assert [(name, before) for name, before, _ in seen] == [
        ("hasten.http1.request", "unset"),
        ("hasten.http1.request", "unset"),
    ]


@pytest.mark.parametrize("loop", LOOPS)
def test_pipelined_requests_do_not_inherit_the_previous_requests_context(loop: str) -> None:
    # Each request after the first starts from the task of the one before it.
    with run_server(context_reporter, loop=loop) as server, server.connect() as client:
        client.send(b"".join(request(path=path) for path in ("/a", "/b", "/c")))
        bodies = [client.read_response().body for _ in range(3)]
    assert bodies == [b"nothing"] * 3


@pytest.mark.parametrize("loop", LOOPS)
def test_a_task_factory_the_app_installs_runs_its_requests(loop: str) -> None:
    made: list[asyncio.Task[Any]] = []
    ran_in_made_task: list[bool] = []

    def factory(event_loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=event_loop, **kwargs)
        made.append(task)
        return task

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            asyncio.get_running_loop().set_task_factory(factory)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        ran_in_made_task.append(asyncio.current_task() in made)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with run_server(app, loop=loop) as server, server.connect() as client:
        client.send(request())
        assert client.read_response().status == 204
    assert ran_in_made_task == [True]
