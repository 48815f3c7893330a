"""The ASGI websocket contract, the same over both carriers (``ws_carrier``): the handshake
answers (accept, 403, 500, the app's own denial response), messages both ways, and the
closing handshake and disconnects as the app sees them."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.contract.ws_carriers import WebSocketCarrier
from tests.protocols.http1_apps import wait_for
from tests.protocols.ws_support import echo

ACCEPT = {"type": "websocket.accept"}


class Seen:
    """What the app received and raised, for the test thread."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def add(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.messages.append(message)

    def disconnects(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if m["type"] == "websocket.disconnect"]


def accepted(ws_carrier: WebSocketCarrier, status: int) -> bool:
    return status == (101 if ws_carrier.name == "http1-upgrade" else 200)


def test_accepted_websocket_echoes_messages(ws_carrier: WebSocketCarrier) -> None:
    with ws_carrier.serve(echo):
        session = ws_carrier.open()
        assert accepted(ws_carrier, session.answer.status)
        for text in ("hello", "é" * 1000):
            session.send_text(text)
            assert session.receive_text() == text
        session.disconnect()


def test_a_websocket_scope_offers_the_denial_response_and_no_http_response_extension(
    ws_carrier: WebSocketCarrier,
) -> None:
    """Trailers, early hints and file bodies are HTTP response messages: a WebSocket's
    request offered them over HTTP/2 (trailers, early hints) and would have offered files."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            seen.append(scope["extensions"])
            await echo(scope, receive, send)

    with ws_carrier.serve(app):
        session = ws_carrier.open()
        session.send_text("hi")
        assert session.receive_text() == "hi"
        session.disconnect()
    assert "websocket.http.response" in seen[0]
    assert not [name for name in seen[0] if name.startswith("http.response.")]


def test_close_before_accept_is_a_403(ws_carrier: WebSocketCarrier) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close"})

    with ws_carrier.serve(app):
        answer = ws_carrier.open().answer
    assert (answer.status, answer.complete) == (403, True)


@pytest.mark.parametrize(
    "misstep",
    ["raise", "return", "send_before_accept", "subprotocol_not_offered"],
)
def test_app_failing_before_accept_gets_a_500(ws_carrier: WebSocketCarrier, misstep: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        if misstep == "raise":
            raise ValueError("boom")
        if misstep == "send_before_accept":
            await send({"type": "websocket.send", "text": "too early"})
        if misstep == "subprotocol_not_offered":
            await send({**ACCEPT, "subprotocol": "never-offered"})

    with ws_carrier.serve(app):
        answer = ws_carrier.open().answer
    assert (answer.status, answer.complete) == (500, True)


def test_denial_response_is_the_apps_own(ws_carrier: WebSocketCarrier) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        start = {"type": "websocket.http.response.start", "status": 401}
        await send({**start, "headers": [(b"www-authenticate", b"Basic")]})
        body = {"type": "websocket.http.response.body", "body": b"who are you"}
        await send({**body, "more_body": True})
        await send({**body, "body": b"?"})

    with ws_carrier.serve(app):
        answer = ws_carrier.open().answer
    assert (answer.status, answer.body, answer.complete) == (401, b"who are you?", True)
    assert answer.header("www-authenticate") == "Basic"


def test_denial_response_left_unfinished_is_never_complete(ws_carrier: WebSocketCarrier) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        start = {"type": "websocket.http.response.start", "status": 401}
        await send({**start, "headers": [(b"content-length", b"20")]})
        await send({"type": "websocket.http.response.body", "body": b"part", "more_body": True})

    with ws_carrier.serve(app):
        answer = ws_carrier.open().answer
    assert answer.status == 401
    assert not answer.complete


def test_close_from_the_app_reaches_the_client(ws_carrier: WebSocketCarrier) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send(ACCEPT)
            await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
            await receive()

    with ws_carrier.serve(app):
        session = ws_carrier.open()
        assert session.close_received() == (4001, "bye now")


def test_close_from_the_client_reaches_the_app(ws_carrier: WebSocketCarrier) -> None:
    seen = Seen()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send(ACCEPT)
            seen.add(await receive())

    with ws_carrier.serve(app):
        session = ws_carrier.open()
        session.send_close(4002, "client leaves")
        assert session.close_received()[0] == 4002
        wait_for(seen.disconnects)
    assert seen.disconnects() == [
        {"type": "websocket.disconnect", "code": 4002, "reason": "client leaves"}
    ]


def test_client_vanishing_is_a_1006_disconnect(ws_carrier: WebSocketCarrier) -> None:
    seen = Seen()
    ready = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send(ACCEPT)
            ready.set()
            seen.add(await receive())

    with ws_carrier.serve(app):
        session = ws_carrier.open()
        assert ready.wait(5)
        session.disconnect()
        wait_for(seen.disconnects)
    assert seen.disconnects()[0]["code"] == 1006


def test_app_raising_after_accept_closes_with_1011(ws_carrier: WebSocketCarrier) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send(ACCEPT)
            raise ValueError("boom")

    with ws_carrier.serve(app):
        session = ws_carrier.open()
        assert session.close_received()[0] == 1011
