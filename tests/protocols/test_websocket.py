"""WebSocket behaviour against a real server, with the websockets asyncio client: the ASGI
websocket scope and messages, handshake replies, settings, backpressure and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hasten.asgi import ClientDisconnected
from tests.harness import request, run_server
from tests.protocols.context_app import context_reporter
from tests.protocols.ws_support import (
    Recorder,
    echo,
    frame,
    open_raw,
    read_close_code,
    read_frame,
    run,
    upgrade_request,
    wait_until,
    ws_url,
)


async def _accept_then(scope: Any, receive: Any, send: Any, *, then: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await then(receive, send)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_text_and_binary_messages_are_echoed(loop: str) -> None:
    async def exchange(url: str) -> list[Any]:
        async with connect(url) as ws:
            await ws.send("héllo")
            text = await ws.recv()
            await ws.send(b"\x00\xff")
            data = await ws.recv()
            return [text, data]

    with run_server(echo, loop=loop) as server:
        assert run(exchange(ws_url(server))) == ["héllo", b"\x00\xff"]


def test_websocket_scope() -> None:
    app = Recorder(echo)

    async def open_close(url: str) -> None:
        async with connect(url + "?room=1", subprotocols=["chat", "superchat"]):
            pass

    with run_server(app, root_path="/root") as server:
        run(open_close(ws_url(server, "/p%20q")))
    scope = app.scopes[0]
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "1.1"
    assert scope["path"] == "/root/p q"
    assert scope["raw_path"] == b"/root/p%20q"
    assert scope["query_string"] == b"room=1"
    assert scope["root_path"] == "/root"
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert "method" not in scope
    assert "websocket.http.response" in scope["extensions"]
    assert (b"sec-websocket-key" in dict(scope["headers"])) is True
    assert scope["client"][0] == "127.0.0.1"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}


def test_accept_with_subprotocol_and_extra_headers() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": "superchat",
                "headers": [(b"x-room", b"lobby"), (b"set-cookie", b"a=1")],
            }
        )
        await receive()

    async def open_ws(url: str) -> Any:
        async with connect(url, subprotocols=["chat", "superchat"]) as ws:
            return ws.subprotocol, ws.response.headers

    with run_server(app) as server:
        subprotocol, headers = run(open_ws(ws_url(server)))
    assert subprotocol == "superchat"
    assert headers["x-room"] == "lobby"
    assert headers["set-cookie"] == "a=1"
    assert headers["server"] == "hasten"


def test_subprotocol_not_offered_is_an_app_error_answered_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "other"})

    with run_server(app) as server, server.connect() as client:
        client.send(upgrade_request({"Sec-WebSocket-Protocol": "chat"}))
        assert client.read_response().status == 500


def test_close_before_accept_is_http_403() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})

    with run_server(app) as server, server.connect() as client:
        client.send(upgrade_request())
        response = client.read_response()
        assert response.status == 403
        assert client.is_closed()


def test_denial_response_extension_sends_the_apps_http_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"www-authenticate", b"Basic")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"are you?"})

    with run_server(app) as server, server.connect() as client:
        client.send(upgrade_request())
        response = client.read_response()
        assert response.status == 401
        assert response.header("www-authenticate") == "Basic"
        assert response.body == b"who are you?"
        assert client.is_closed()


def test_denial_response_with_invalid_status_is_answered_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 1000})

    with run_server(app) as server, server.connect() as client:
        client.send(upgrade_request())
        assert client.read_response().status == 500


def test_app_exception_before_accept_is_http_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("boom")

    with run_server(app) as server, server.connect() as client:
        client.send(upgrade_request())
        assert client.read_response().status == 500


def test_app_returning_without_accepting_is_http_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    with run_server(app) as server, server.connect() as client:
        client.send(upgrade_request())
        assert client.read_response().status == 500


def test_app_exception_after_accept_closes_with_1011() -> None:
    async def then(receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _accept_then(scope, receive, send, then=then)

    with run_server(app) as server, open_raw(server) as client:
        assert read_close_code(client) == 1011


def test_app_closes_with_code_and_reason() -> None:
    async def then(receive: Any, send: Any) -> None:
        await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
        await receive()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _accept_then(scope, receive, send, then=then)

    async def wait_close(url: str) -> tuple[int, str]:
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code, closed.value.rcvd.reason

    with run_server(app) as server:
        assert run(wait_close(ws_url(server))) == (4001, "bye now")


def test_app_returning_after_accept_closes_with_1000() -> None:
    async def then(receive: Any, send: Any) -> None:
        return

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _accept_then(scope, receive, send, then=then)

    with run_server(app) as server, open_raw(server) as client:
        assert read_close_code(client) == 1000


def test_client_close_gives_the_app_its_code_and_reason() -> None:
    app = Recorder(echo)

    async def close_with(url: str) -> None:
        async with connect(url) as ws:
            await ws.close(4002, "done here")

    with run_server(app) as server:
        run(close_with(ws_url(server)))
        wait_until(lambda: bool(app.disconnects()))
    assert app.disconnects()[0] == {
        "type": "websocket.disconnect",
        "code": 4002,
        "reason": "done here",
    }


def test_tcp_reset_gives_the_app_disconnect_1006() -> None:
    app = Recorder(echo)
    with run_server(app) as server:
        client = open_raw(server)
        client.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        client.close()
        wait_until(lambda: bool(app.disconnects()))
    assert app.disconnects()[0]["code"] == 1006


def test_send_after_app_close_raises_a_clear_error() -> None:
    errors: list[BaseException] = []

    async def then(receive: Any, send: Any) -> None:
        await send({"type": "websocket.close"})
        try:
            await send({"type": "websocket.send", "text": "late"})
        except (RuntimeError, OSError) as exc:
            errors.append(exc)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _accept_then(scope, receive, send, then=then)

    with run_server(app) as server, open_raw(server) as client:
        assert read_close_code(client) == 1000
        wait_until(lambda: bool(errors))
    assert isinstance(errors[0], RuntimeError)
    assert "already closed" in str(errors[0])


def test_send_after_client_disconnect_raises_client_disconnected() -> None:
    errors: list[BaseException] = []

    async def then(receive: Any, send: Any) -> None:
        while (await receive())["type"] != "websocket.disconnect":
            pass
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError as exc:
            errors.append(exc)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _accept_then(scope, receive, send, then=then)

    async def close(url: str) -> None:
        async with connect(url):
            pass

    with run_server(app) as server:
        run(close(ws_url(server)))
        wait_until(lambda: bool(errors))
    assert isinstance(errors[0], ClientDisconnected)
    assert "closed (code 1000)" in str(errors[0])


def test_message_over_ws_max_size_closes_with_1009() -> None:
    async def send_big(url: str) -> int | None:
        async with connect(url, max_size=None) as ws:
            await ws.send(b"x" * 2000)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code if closed.value.rcvd else None

    with run_server(echo, ws_max_size=1024) as server:
        assert run(send_big(ws_url(server))) == 1009


def test_fragments_adding_up_past_ws_max_size_close_with_1009() -> None:
    with run_server(echo, ws_max_size=1024) as server, open_raw(server) as client:
        client.send(frame(0x2, b"a" * 600, fin=False) + frame(0x0, b"b" * 600))
        assert read_close_code(client) == 1009


@pytest.mark.parametrize("enabled", [True, False])
def test_per_message_deflate_follows_its_setting(enabled: bool) -> None:
    async def exchange(url: str) -> tuple[str | None, str]:
        async with connect(url) as ws:
            await ws.send("a" * 10000)
            reply = await ws.recv()
            return ws.response.headers.get("sec-websocket-extensions"), str(reply)

    with run_server(echo, ws_per_message_deflate=enabled) as server:
        extensions, reply = run(exchange(ws_url(server)))
    assert reply == "a" * 10000
    assert (extensions is not None and "permessage-deflate" in extensions) is enabled


def test_ws_none_answers_the_upgrade_as_plain_http() -> None:
    with run_server(echo, ws="none") as server, server.connect() as client:
        client.send(upgrade_request())
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"plain http"


def test_dead_peer_is_closed_by_the_ping_timeout() -> None:
    app = Recorder(echo)
    with (
        run_server(app, ws_ping_interval=0.1, ws_ping_timeout=0.2) as server,
        open_raw(server) as client,
    ):
        _, opcode, _ = read_frame(client)
        assert opcode == 0x9  # a ping, which this peer never answers
        wait_until(lambda: bool(app.disconnects()))
        assert client.read_all(timeout=2) is not None
    assert app.disconnects()[0]["code"] == 1006


def test_peer_answering_pings_stays_connected() -> None:
    async def idle(url: str) -> str:
        async with connect(url) as ws:
            await asyncio.sleep(0.5)
            await ws.send("still here")
            return str(await ws.recv())

    with run_server(echo, ws_ping_interval=0.05, ws_ping_timeout=0.2) as server:
        assert run(idle(ws_url(server))) == "still here"


def test_graceful_shutdown_closes_with_1001_and_tells_the_app() -> None:
    app = Recorder(echo)
    with run_server(app) as server, open_raw(server) as client:
        client.send(frame(0x1, b"hi"))
        assert read_frame(client)[2] == b"hi"
        server.server.should_exit = True
        assert read_close_code(client) == 1001
        client.send(frame(0x8, b"\x03\xe9"))
        wait_until(lambda: bool(app.disconnects()))
    assert app.disconnects()[0]["code"] == 1001


def test_frames_sent_with_the_handshake_are_delivered_after_accept() -> None:
    with run_server(echo) as server, open_raw(server, early=frame(0x1, b"early")) as client:
        assert read_frame(client) == (True, 0x1, b"early")


def test_upgrade_pipelined_behind_a_request_is_refused_after_its_response() -> None:
    with run_server(echo) as server, server.connect() as client:
        client.send(request(path="/first") + upgrade_request())
        assert client.read_response().body == b"plain http"
        assert client.read_response().status == 400
        assert client.is_closed()


def test_fragmented_message_with_a_ping_between_fragments_is_reassembled() -> None:
    with run_server(echo) as server, open_raw(server) as client:
        client.send(frame(0x1, b"hel", fin=False) + frame(0x9, b"p") + frame(0x0, b"lo"))
        assert read_frame(client) == (True, 0xA, b"p")
        assert read_frame(client) == (True, 0x1, b"hello")


def test_slow_app_stops_the_socket_being_read() -> None:
    release = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def then(receive: Any, send: Any) -> None:
        loops.append(asyncio.get_running_loop())
        await release.wait()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _accept_then(scope, receive, send, then=then)

    with run_server(app, ws_max_queue=4) as server, open_raw(server) as client:
        message = frame(0x2, b"x" * 65536)
        client.sock.settimeout(0.5)
        sent = 0
        with contextlib.suppress(TimeoutError):
            while sent < 200 * 1024 * 1024:
                client.sock.sendall(message)
                sent += len(message)
        # The kernel buffers a few MiB; the server read at most ws_max_queue messages.
        assert sent < 64 * 1024 * 1024
        loops[0].call_soon_threadsafe(release.set)


def test_slow_reader_makes_the_apps_send_wait() -> None:
    sent_messages: list[int] = []

    async def then(receive: Any, send: Any) -> None:
        for count in range(1, 10_000):
            await send({"type": "websocket.send", "bytes": b"y" * 1024 * 1024})
            sent_messages.append(count)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _accept_then(scope, receive, send, then=then)

    with run_server(app, ws_per_message_deflate=False) as server, open_raw(server) as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        wait_until(lambda: bool(sent_messages))
        time.sleep(0.5)
        # Socket buffers hold a few MiB; the app's send() waits instead of growing memory.
        assert len(sent_messages) < 64


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_wss_over_tls_has_the_wss_scheme(tmp_path: Any, loop: str) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    app = Recorder(echo)

    async def exchange(url: str) -> str:
        async with connect(url, ssl=client_context) as ws:
            await ws.send("secure")
            return str(await ws.recv())

    with run_server(
        app, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file), loop=loop
    ) as server:
        url = ws_url(server).replace("ws://", "wss://")
        assert run(exchange(url)) == "secure"
    assert app.scopes[0]["scheme"] == "wss"


def test_peer_that_never_answers_the_close_frame_is_dropped_after_the_timeout() -> None:
    async def then(receive: Any, send: Any) -> None:
        await send({"type": "websocket.close", "code": 1000})
        await receive()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _accept_then(scope, receive, send, then=then)

    with (
        run_server(app, ws_ping_interval=None, ws_ping_timeout=0.3) as server,
        open_raw(server) as client,
    ):
        assert read_close_code(client) == 1000
        started = time.monotonic()
        assert client.is_closed(timeout=5)
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_websocket_does_not_inherit_an_earlier_requests_context(loop: str) -> None:
    with run_server(context_reporter, loop=loop) as server, server.connect() as client:
        client.send(request(path="/http"))
        assert client.read_response().body == b"nothing"
        client.send(upgrade_request())
        assert client.read_response(head_request=True).status == 101
        assert read_frame(client) == (True, 0x1, b"nothing")
