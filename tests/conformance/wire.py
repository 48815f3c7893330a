"""Assertions shared by the raw-bytes conformance tests."""

from __future__ import annotations

import contextlib

from tests.conformance.recording_app import RecordingApp
from tests.harness import RawClient, Response, RunningServer

PROBE = b"GET /probe HTTP/1.1\r\nHost: t\r\n\r\n"
HOST = b"Host: t\r\n"


def send_all(client: RawClient, data: bytes) -> None:
    """Send, tolerating a server that closes before reading everything (it refused early)."""
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        client.send(data)


def assert_still_serving(server: RunningServer, app: RecordingApp) -> None:
    """A fresh connection is answered, and the app sees exactly that request."""
    before = len(app.requests)
    with server.connect() as client:
        client.send(PROBE)
        assert client.read_response().status == 200
    assert [seen.path for seen in app.requests[before:]] == ["/probe"]


def assert_refused(
    server: RunningServer,
    app: RecordingApp,
    data: bytes,
    status: int,
    *,
    reached_app: tuple[str, ...] = (),
    body_refused: bool = False,
) -> Response:
    """``data`` gets one ``status`` response with ``connection: close``, then the server
    closes without another byte; the app saw only ``reached_app``; the server still serves.

    A probe request is sent after ``data`` on the same connection: it must never be
    answered (desync check). With ``body_refused`` the last request's head was fine and its
    body is not: its app may have started, but never gets the body as complete.
    """
    with server.connect() as client:
        send_all(client, data + PROBE)
        responses = []
        response = client.read_response()
        while response.status == 200 and len(responses) < len(reached_app):
            responses.append(response)
            response = client.read_response()
        assert response.status == status, response
        assert response.header("connection") == "close"
        assert client.is_closed()
        assert client.buffer == b"", client.buffer
    seen = app.requests[len(reached_app) :]
    assert app.paths()[: len(reached_app)] == list(reached_app)
    if body_refused:
        assert len(seen) <= 1 and not any(request.body_complete for request in seen), seen
    else:
        assert not seen, seen
    assert_still_serving(server, app)
    return response


def exchange(server: RunningServer, data: bytes, count: int) -> list[Response]:
    """Send ``data`` then a probe on one connection; read ``count`` responses and the probe's."""
    with server.connect() as client:
        client.send(data + PROBE)
        responses = [client.read_response() for _ in range(count + 1)]
        assert responses[-1].body == b"GET /probe"
        client.sock.settimeout(0.2)
        with contextlib.suppress(TimeoutError):
            extra = client.sock.recv(1)
            assert extra == b"", f"more responses than requests: {extra!r}"
    return responses[:-1]
