"""Request limits and read timeouts (414, 431, 413, 429, 408), each on a server with small
limits so the tests stay fast."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.recording_app import RecordingApp
from tests.conformance.wire import HOST, assert_refused, assert_still_serving, exchange, send_all
from tests.harness import RawClient, RunningServer, run_server

Served = tuple[RunningServer, RecordingApp]

LIMITS = {
    "limit_request_line": 100,
    "limit_request_fields": 10,
    "limit_request_field_size": 200,
    "limit_request_headers_size": 1000,
    "limit_request_body": 10,
    "limit_pipelined_requests": 4,
    "timeout_request_header": 0.6,
    "timeout_request_body": 0.6,
    "timeout_keep_alive": 1.0,
}


@pytest.fixture(scope="module")
def limited_server() -> Iterator[tuple[RunningServer, RecordingApp]]:
    app = RecordingApp()
    with run_server(app, http="h1", **LIMITS) as server:
        yield server, app


@pytest.fixture
def served(limited_server: Served) -> Served:
    server, app = limited_server
    app.requests.clear()
    return server, app


def get(target: bytes = b"/", fields: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\n" + HOST + fields + b"\r\n"


def test_target_at_the_limit_is_accepted(served: Served) -> None:
    server, _ = served
    [response] = exchange(server, get(b"/" + b"a" * 99), 1)
    assert response.status == 200


def test_target_over_the_limit_gets_414(served: Served) -> None:
    assert_refused(*served, get(b"/" + b"a" * 100), 414)


def test_huge_target_gets_414_before_the_line_ends(served: Served) -> None:
    server, app = served
    with server.connect() as client:
        client.send(b"GET /" + b"a" * 70_000)
        response = client.read_response()
        assert response.status == 414
        assert client.is_closed()
    assert app.requests == []
    assert_still_serving(server, app)


def test_too_many_fields_get_431(served: Served) -> None:
    fields = b"".join(b"X-%d: v\r\n" % n for n in range(10))
    assert_refused(*served, get(fields=fields), 431)


def test_fields_up_to_the_count_are_accepted(served: Served) -> None:
    server, _ = served
    fields = b"".join(b"X-%d: v\r\n" % n for n in range(9))  # plus Host: 10
    [response] = exchange(server, get(fields=fields), 1)
    assert response.status == 200


def test_oversized_field_gets_431(served: Served) -> None:
    assert_refused(*served, get(fields=b"X-Big: " + b"v" * 200 + b"\r\n"), 431)


def test_oversized_head_gets_431(served: Served) -> None:
    fields = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 150) for n in range(8))
    assert_refused(*served, get(fields=fields), 431)


def test_unfinished_field_is_refused_once_the_head_passes_its_limit(served: Served) -> None:
    server, app = served
    with server.connect() as client:
        client.send(get()[:-2] + b"X-Endless: ")
        for _ in range(20):
            send_all(client, b"v" * 200)
            time.sleep(0.005)
        response = client.read_response()
        assert response.status == 431
        assert client.is_closed()
    assert app.requests == []
    assert_still_serving(server, app)


def send_until_answered(client: RawClient, pieces: Iterator[bytes]) -> int:
    """Send ``pieces`` until the server answers (or closes); how many bytes were sent."""
    sent = 0
    for piece in pieces:
        send_all(client, piece)
        sent += len(piece)
        client.sock.settimeout(0.05)
        with contextlib.suppress(TimeoutError):
            if not client._fill() or client.buffer:
                break
    client.sock.settimeout(5)
    return sent


def endless_field() -> Iterator[bytes]:
    """A field value of 2 MiB at most, in pieces that double from 1 KiB."""
    return (b"v" * (1024 << n) for n in range(11))


CHUNKED_HEAD = b"Transfer-Encoding: chunked\r\n\r\n"


def test_endless_trailer_field_gets_431_and_close(served: Served) -> None:
    server, app = served
    with server.connect() as client:
        client.send(b"POST / HTTP/1.1\r\n" + HOST + CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX: ")
        sent = send_until_answered(client, endless_field())
        send_all(client, b"\r\n\r\n")
        response = client.read_response()
        assert response.status == 431
        assert response.header("connection") == "close"
        assert client.is_closed()
        assert sent < 64 * 1024  # RFC 9112 §7.1.2: bounded like the head
    assert app.paths() == ["/"]
    assert not app.requests[0].body_complete
    assert_still_serving(server, app)


def test_endless_trailer_field_after_an_early_answer_closes_the_connection(
    served: Served,
) -> None:
    server, app = served
    with server.connect() as client:
        client.send(b"POST /answer-early HTTP/1.1\r\n" + HOST + CHUNKED_HEAD + b"5\r\nhello\r\n")
        response = client.read_response()
        assert (response.status, response.body) == (200, b"early")
        client.send(b"0\r\nX: ")
        sent = send_until_answered(client, endless_field())
        send_all(client, b"\r\n\r\n")
        # The answer is out: a second one would answer a request the client never sent.
        assert client.is_closed()
        assert client.buffer == b""
        assert sent < 64 * 1024
    assert_still_serving(server, app)


def test_too_many_trailer_fields_get_431(served: Served) -> None:
    fields = b"".join(b"X-%d: v\r\n" % n for n in range(11))
    data = b"POST / HTTP/1.1\r\n" + HOST + CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n" + fields + b"\r\n"
    assert_refused(*served, data, 431, body_refused=True)


def test_oversized_trailer_field_gets_431(served: Served) -> None:
    trailer = b"X-Big: " + b"v" * 200 + b"\r\n\r\n"
    data = b"POST / HTTP/1.1\r\n" + HOST + CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n" + trailer
    assert_refused(*served, data, 431, body_refused=True)


def test_trailer_within_the_limits_is_accepted(served: Served) -> None:
    server, app = served
    fields = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 90) for n in range(10))
    data = b"POST / HTTP/1.1\r\n" + HOST + CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n" + fields + b"\r\n"
    [response] = exchange(server, data, 1)
    assert response.status == 200
    assert app.requests[0].body == b"hello"


def test_content_length_over_the_body_limit_gets_413_before_the_body(served: Served) -> None:
    server, app = served
    with server.connect() as client:
        client.send(
            b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 11\r\nExpect: 100-continue\r\n\r\n"
        )
        response = client.read_response()
        assert response.status == 413
        assert client.is_closed()
    assert app.requests == []
    assert_still_serving(server, app)


def test_body_at_the_limit_is_accepted(served: Served) -> None:
    server, app = served
    data = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\n0123456789"
    [response] = exchange(server, data, 1)
    assert response.status == 200
    assert app.requests[0].body == b"0123456789"


def test_chunked_body_growing_past_the_limit_gets_413(served: Served) -> None:
    data = (
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n"
    )
    assert_refused(*served, data, 413, body_refused=True)


def test_pipelined_requests_beyond_the_bound_get_429_after_the_others(served: Served) -> None:
    server, app = served
    with server.connect() as client:
        send_all(client, b"".join(get(b"/%d" % n) for n in range(10)))
        statuses = [client.read_response().status for _ in range(5)]
        assert statuses == [200, 200, 200, 200, 429]
        assert client.is_closed()
    assert app.paths() == ["/0", "/1", "/2", "/3"]
    assert_still_serving(server, app)


def test_slow_head_gets_408_though_bytes_keep_arriving(served: Served) -> None:
    server, app = served
    with server.connect(timeout=5) as client:
        started = time.monotonic()
        client.send(b"GET / HTTP/1.1\r\nX: ")
        response = None
        while response is None and time.monotonic() - started < 4:
            send_all(client, b"v")
            client.sock.settimeout(0.1)
            try:
                if client._fill() and b"\r\n\r\n" in client.buffer:
                    client.sock.settimeout(5)
                    response = client.read_response()
            except TimeoutError:
                pass
        assert response is not None and response.status == 408
        assert time.monotonic() - started < 3
        assert client.is_closed()
    assert app.requests == []
    assert_still_serving(server, app)


def test_slow_trailer_gets_408_though_bytes_keep_arriving(served: Served) -> None:
    server, app = served
    with server.connect(timeout=5) as client:
        client.send(b"POST / HTTP/1.1\r\n" + HOST + CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX: ")
        started = time.monotonic()
        # A byte every 0.05 s for 4 s: each restarts the body's clock, not the head's.
        send_until_answered(client, (b"v" for _ in range(80)))
        response = client.read_response()
        assert response.status == 408
        assert time.monotonic() - started < 3
        assert client.is_closed()
    assert app.paths() == ["/"]
    assert_still_serving(server, app)


def test_stalled_body_gets_408_and_the_app_sees_a_disconnect(served: Served) -> None:
    server, app = served
    with server.connect(timeout=5) as client:
        client.send(b"POST /upload HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\nabc")
        response = client.read_response()
        assert response.status == 408
        assert client.is_closed()
    deadline = time.monotonic() + 2
    while not app.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.paths() == ["/upload"]
    assert not app.requests[0].body_complete
    assert_still_serving(server, app)


def test_idle_connection_before_any_byte_is_closed(served: Served) -> None:
    server, _ = served
    with server.connect(timeout=5) as client:
        # timeout_keep_alive applies before the first request too.
        assert client.is_closed(timeout=4)


async def endless_stream(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    try:
        while True:
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
    except OSError:
        STREAM_ENDINGS.append("send raised")
        raise


STREAM_ENDINGS: list[str] = []


def test_client_that_stops_reading_is_dropped_and_the_app_released() -> None:
    STREAM_ENDINGS.clear()
    with run_server(
        endless_stream, http="h1", timeout_response_write=0.5, log_level="critical"
    ) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((server.host, server.port))
        with RawClient(sock) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            deadline = time.monotonic() + 5
            while not STREAM_ENDINGS and time.monotonic() < deadline:
                time.sleep(0.02)
            assert STREAM_ENDINGS == ["send raised"]
            # What was buffered before the drop is readable; then the connection is gone.
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(1 << 20):
                    pass


def test_endless_empty_lines_before_a_request_get_408(served: Served) -> None:
    server, app = served
    with server.connect(timeout=5) as client:
        started = time.monotonic()
        client.sock.settimeout(0.1)
        while b"\r\n\r\n" not in client.buffer and time.monotonic() - started < 4:
            send_all(client, b"\r\n")
            with contextlib.suppress(TimeoutError):
                client._fill()
        client.sock.settimeout(5)
        assert client.read_response().status == 408
        assert time.monotonic() - started < 3
        assert client.is_closed()
    assert app.requests == []
    assert_still_serving(server, app)
