"""Hostile-input checklist 2.3: connection management (close, pipelining, half-close)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.recording_app import RecordingApp
from tests.conformance.wire import HOST, assert_refused, assert_still_serving, send_all
from tests.harness import RunningServer, run_server

Served = tuple[RunningServer, RecordingApp]


@pytest.mark.parametrize("value", [b"close", b"CLOSE", b"keep-alive, close"])
def test_no_request_after_connection_close_reaches_the_app(served: Served, value: bytes) -> None:
    server, app = served
    with server.connect() as client:
        client.send(
            b"GET /1 HTTP/1.1\r\n" + HOST + b"Connection: " + value + b"\r\n\r\n"
            b"GET /2 HTTP/1.1\r\n" + HOST + b"\r\n"
        )
        response = client.read_response()
        assert response.header("connection") == "close"
        assert client.is_closed()
        assert client.buffer == b""
    assert app.paths() == ["/1"]


def test_valid_request_then_invalid_one_gets_200_then_400(served: Served) -> None:
    assert_refused(
        *served, b"GET /ok HTTP/1.1\r\n" + HOST + b"\r\nInvalid\r\n\r\n", 400, reached_app=("/ok",)
    )


def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    server, app = served
    with server.connect() as client:
        client.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % n for n in range(8)))
        bodies = [client.read_response().body for _ in range(8)]
    assert bodies == [b"GET /%d" % n for n in range(8)]
    assert app.paths() == [f"/{n}" for n in range(8)]


def test_http_1_0_connection_closes_after_the_response(served: Served) -> None:
    server, _ = served
    with server.connect() as client:
        client.send(b"GET / HTTP/1.0\r\n\r\nGET /again HTTP/1.0\r\n\r\n")
        assert client.read_response().status == 200
        assert client.is_closed()
        assert client.buffer == b""


def test_half_closed_client_still_gets_its_response(served: Served) -> None:
    server, app = served
    with server.connect() as client:
        client.send(b"POST /half HTTP/1.1\r\n" + HOST + b"Content-Length: 2\r\n\r\nhi")
        client.sock.shutdown(1)
        response = client.read_response()
        assert response.body == b"POST /half"
        assert client.is_closed()
    assert app.requests[0].body == b"hi"


@pytest.fixture(scope="module")
def auto_server() -> Iterator[Served]:
    app = RecordingApp()
    with run_server(app, http="auto") as server:
        yield server, app


def test_http2_preface_after_a_request_gets_400_and_close(auto_server: Served) -> None:
    server, app = auto_server
    app.requests.clear()
    with server.connect() as client:
        client.send(b"GET /first HTTP/1.1\r\n" + HOST + b"\r\n")
        assert client.read_response().status == 200
        # RFC 9113 §3.3: only the first bytes of a connection may be the preface.
        send_all(client, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        response = client.read_response()
        assert response.status == 400
        assert response.header("connection") == "close"
        assert client.is_closed()
        assert client.buffer == b""
    assert app.paths() == ["/first"]
    assert_still_serving(server, app)


@pytest.fixture(scope="module")
def h1_only_server() -> Iterator[Served]:
    app = RecordingApp()
    with run_server(app, http="h1") as server:
        yield server, app


def test_http2_preface_on_an_http1_only_listener_is_not_answered_200(
    h1_only_server: Served,
) -> None:
    server, app = h1_only_server
    app.requests.clear()
    with server.connect() as client:
        client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        data = client.read_all(timeout=3)
    assert not data.startswith(b"HTTP/1.1 2")
    assert app.requests == []
    assert_still_serving(server, app)
