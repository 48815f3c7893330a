"""Hostile-input checklist 2.4: what the app sends is checked before it reaches the wire."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.recording_app import RecordingApp
from tests.conformance.wire import HOST, assert_still_serving
from tests.harness import RunningServer, run_server

BAD_HEADERS: dict[str, tuple[Any, Any]] = {
    "value-crlf": (b"x-a", b"v\r\nSet-Cookie: x=1"),
    "value-lf": (b"x-a", b"v\nX: y"),
    "value-nul": (b"x-a", b"v\x00"),
    "name-space": (b"bad header", b"v"),
    "name-colon": (b"bad:header", b"v"),
    "name-del": (b"x\x7f", b"v"),
    "name-empty": (b"", b"v"),
    "name-str": ("x-a", b"v"),
    "value-str": (b"x-a", "v"),
}


async def misbehaving_app(scope: Any, receive: Any, send: Any) -> None:
    """``/header/<case>`` sends a bad header; ``/short`` and ``/long`` break their length."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.startswith("/header/"):
        name, value = BAD_HEADERS[path.removeprefix("/header/")]
        await send({"type": "http.response.start", "status": 200, "headers": [(name, value)]})
        await send({"type": "http.response.body", "body": b"never"})
    elif path in ("/short", "/long"):
        body = b"abc" if path == "/short" else b"x" * 60
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
        )
        await send({"type": "http.response.body", "body": body})
    else:
        await RecordingApp()(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(misbehaving_app, http="h1", log_level="critical") as running:
        yield running


def probe(server: RunningServer) -> None:
    with server.connect() as client:
        client.send(b"GET /probe HTTP/1.1\r\n" + HOST + b"\r\n")
        assert client.read_response().status == 200


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_invalid_response_header_is_never_sent(server: RunningServer, case: str) -> None:
    with server.connect() as client:
        client.send(b"GET /header/" + case.encode() + b" HTTP/1.1\r\n" + HOST + b"\r\n")
        response = client.read_response()
        assert response.status == 500
        assert b"never" not in response.body
        assert b"Set-Cookie" not in response.raw_head
        assert client.is_closed()
    probe(server)


def test_response_shorter_than_its_content_length_closes_the_connection(
    server: RunningServer,
) -> None:
    with server.connect() as client:
        client.send(b"GET /short HTTP/1.1\r\n" + HOST + b"\r\n")
        data = client.read_all()
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"\r\n\r\nabc")
    probe(server)


def test_response_longer_than_its_content_length_is_never_sent(server: RunningServer) -> None:
    with server.connect() as client:
        client.send(b"GET /long HTTP/1.1\r\n" + HOST + b"\r\n")
        data = client.read_all()
    assert b"x" not in data.partition(b"\r\n\r\n")[2]
    probe(server)


def test_percent_encoded_crlf_copied_into_a_header_is_refused() -> None:
    app = RecordingApp()
    with run_server(app, http="h1", log_level="critical") as server:
        with server.connect() as client:
            client.send(
                b"GET /header-from-path?%0d%0aSet-Cookie:%20a=b HTTP/1.1\r\n" + HOST + b"\r\n"
            )
            response = client.read_response()
            assert response.status == 500
            assert b"Set-Cookie" not in response.raw_head
        assert_still_serving(server, app)


def test_access_log_escapes_control_characters(caplog: pytest.LogCaptureFixture) -> None:
    app = RecordingApp()
    with (
        caplog.at_level(logging.INFO, logger="hasten.access"),
        run_server(app, http="h1", log_level="info") as server,
    ):
        with server.connect() as client:
            client.send(b"GET /%1b[31m/x?a=%0d%0aFAKE HTTP/1.1\r\n" + HOST + b"\r\n")
            client.read_response()
        assert_still_serving(server, app)
    lines = [record.getMessage() for record in caplog.records if record.name == "hasten.access"]
    assert lines
    for line in lines:
        assert "\x1b" not in line and "\r" not in line and "\n" not in line


def test_log_escaping_turns_control_characters_into_visible_escapes() -> None:
    from hasten.logs import escape_control_characters

    assert escape_control_characters("a\x1b[31m\r\nb\\\x85") == "a\\x1b[31m\\x0d\\x0ab\\\\\\x85"
