"""WebSockets over HTTP/2 (RFC 8441) against a real hasten: extended CONNECT with h2's client
state machine, frames built and read by websockets' sans-I/O client side."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, RemoteSettingsChanged
from h2.settings import SettingCodes
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from tests.harness import run_server
from tests.protocols.context_app import context_reporter
from tests.protocols.h2client import H2Client, H2Response
from tests.protocols.ws_support import Recorder, echo, frame, wait_until


class H2WebSocket:
    """One WebSocket on a stream of an :class:`H2Client`: frames from websockets' client side
    go out as the stream's DATA, and the stream's DATA is read back as frames."""

    def __init__(self, client: H2Client, stream_id: int, *, deflate: bool = False) -> None:
        self.client = client
        self.stream_id = stream_id
        factories = [ClientPerMessageDeflateFactory()] if deflate else None
        self.frames = ClientProtocol(parse_uri("ws://test/ws"), extensions=factories, state=OPEN)
        self.read_offset = 0
        self.pending: list[Frame] = []

    @property
    def response(self) -> H2Response:
        return self.client.responses.setdefault(self.stream_id, H2Response())

    def wait_response(self) -> H2Response:
        self.client.wait_for(lambda: self.response.status or self.response.ended)
        extensions = self.response.header(b"sec-websocket-extensions")
        if extensions is not None:
            self.frames.extensions = self.frames.process_extensions(
                Headers({"Sec-WebSocket-Extensions": extensions.decode()})
            )
        return self.response

    def send_text(self, text: str) -> None:
        self.frames.send_text(text.encode())
        self.flush()

    def send_binary(self, data: bytes) -> None:
        self.frames.send_binary(data)
        self.flush()

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        self.frames.send_close(code, reason)
        self.flush()

    def flush(self) -> None:
        for data in self.frames.data_to_send():
            if data:
                self.client.send_body(self.stream_id, data, end_stream=False)
            else:
                self.client.conn.end_stream(self.stream_id)
                self.client.flush()

    def _take_frames(self) -> bool:
        body = self.response.body
        if len(body) > self.read_offset:
            self.frames.receive_data(body[self.read_offset :])
            self.read_offset = len(body)
            self.pending.extend(event for event in self.frames.events_received())  # type: ignore[misc]
            self.flush()
        return bool(self.pending)

    def receive(self, timeout: float = 5.0) -> Frame:
        """The next frame from the server, pings and pongs included."""
        self.client.wait_for(self._take_frames, timeout)
        return self.pending.pop(0)

    def receive_message(self) -> str | bytes:
        """The next data frame's payload: text as str."""
        while True:
            received = self.receive()
            if received.opcode is Opcode.TEXT:
                return received.data.decode()
            if received.opcode is Opcode.BINARY:
                return received.data

    def wait_closed(self) -> int | None:
        """Read to the server's close frame and END_STREAM; the close code."""
        while True:
            received = self.receive()
            if received.opcode is Opcode.CLOSE:
                break
        self.client.wait_for(lambda: self.response.ended)
        close = self.frames.close_rcvd
        return None if close is None else close.code


def open_stream(
    client: H2Client,
    path: str = "/ws",
    *,
    protocol: str = "websocket",
    version: str | None = "13",
    headers: list[tuple[str, str]] | None = None,
    scheme: str = "http",
) -> int:
    """Send an extended CONNECT (RFC 8441 §4) once the server's settings have arrived."""
    client.wait_for(lambda: client.conn.remote_settings.enable_connect_protocol == 1)
    stream_id = client.conn.get_next_available_stream_id()
    fields = [
        (":method", "CONNECT"),
        (":protocol", protocol),
        (":scheme", scheme),
        (":path", path),
        (":authority", "test"),
    ]
    if version is not None:
        fields.append(("sec-websocket-version", version))
    client.conn.send_headers(stream_id, fields + (headers or []), end_stream=False)
    client.flush()
    return stream_id


def open_websocket(client: H2Client, path: str = "/ws", **options: Any) -> H2WebSocket:
    deflate = options.pop("deflate", False)
    if deflate:
        options.setdefault("headers", []).append(
            ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits")
        )
    websocket = H2WebSocket(client, open_stream(client, path, **options), deflate=deflate)
    response = websocket.wait_response()
    assert response.status == 200, response
    assert not response.ended
    return websocket


def wait_for_settings(client: H2Client) -> None:
    client.wait_for(
        lambda: any(isinstance(event, RemoteSettingsChanged) for event in client.all_events)
    )


class LenientH2Client(H2Client):
    """h2's client state machine refuses every frame after a GOAWAY; RFC 9113 §6.8 lets the
    streams the GOAWAY spares finish, and this client lets them."""

    def _record(self, event: Any) -> None:
        super()._record(event)
        if isinstance(event, ConnectionTerminated):
            self.conn.state_machine.state = ConnectionState.CLIENT_OPEN


def h2_client(server: Any) -> H2Client:
    return LenientH2Client(server.host, server.port).start()


def open_echoed_websocket(client: H2Client) -> H2WebSocket:
    """A WebSocket to the echo app that has carried one message there and back."""
    websocket = open_websocket(client)
    websocket.send_text("hello")
    assert websocket.receive_message() == "hello"
    return websocket


async def scope_reporter(scope: Any, receive: Any, send: Any) -> None:
    """Accepts with the first subprotocol offered and sends a summary of the scope."""
    if scope["type"] != "websocket":
        return
    await receive()
    subprotocols = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": subprotocols[0] if subprotocols else None,
            "headers": [(b"x-app", b"yes")],
        }
    )
    summary = [
        scope["http_version"],
        scope["scheme"],
        scope["path"],
        scope["query_string"].decode(),
        ",".join(subprotocols),
        "websocket.http.response" in scope["extensions"],
        "method" in scope,
        scope["asgi"]["spec_version"],
    ]
    await send({"type": "websocket.send", "text": repr(summary)})
    await receive()


def test_server_advertises_extended_connect() -> None:
    with run_server(echo) as server, h2_client(server) as client:
        wait_for_settings(client)
        assert client.conn.remote_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1


def test_scope_is_a_websocket_scope_over_http2() -> None:
    with run_server(scope_reporter) as server, h2_client(server) as client:
        websocket = open_websocket(
            client, "/ws?room=1", headers=[("sec-websocket-protocol", "chat, superchat")]
        )
        assert websocket.response.header(b"sec-websocket-protocol") == b"chat"
        assert websocket.response.header(b"x-app") == b"yes"
        assert websocket.response.header(b"server") == b"hasten"
        assert websocket.response.header(b"date") is not None
        assert websocket.response.header(b"sec-websocket-accept") is None
        summary = websocket.receive_message()
    assert summary == repr(["2", "ws", "/ws", "room=1", "chat,superchat", True, False, "2.5"])


def test_websocket_stream_does_not_inherit_another_streams_context() -> None:
    with run_server(context_reporter) as server, h2_client(server) as client:
        assert client.response(client.request("/http")).body == b"nothing"
        assert open_websocket(client).receive_message() == "nothing"


def test_text_and_binary_messages_echo_both_ways() -> None:
    with run_server(echo) as server, h2_client(server) as client:
        websocket = open_websocket(client)
        for number in range(200):
            websocket.send_text(f"message {number}")
            websocket.send_binary(bytes([number % 256]) * (number * 37))
        for number in range(200):
            assert websocket.receive_message() == f"message {number}"
            assert websocket.receive_message() == bytes([number % 256]) * (number * 37)


def test_large_message_crosses_the_flow_control_windows() -> None:
    payload = bytes(range(256)) * 2048  # 512 KiB, eight times the stream's initial window
    with run_server(echo) as server, h2_client(server) as client:
        websocket = open_websocket(client)
        websocket.send_binary(payload)
        assert websocket.receive_message() == payload


def test_permessage_deflate_is_negotiated_and_works() -> None:
    with run_server(echo) as server, h2_client(server) as client:
        websocket = open_websocket(client, deflate=True)
        assert websocket.response.header(b"sec-websocket-extensions").startswith(
            b"permessage-deflate"
        )
        text = "compressible " * 1000
        websocket.send_text(text)
        assert websocket.receive_message() == text
        # The server's frame was compressed: far smaller than the text.
        assert len(websocket.response.body) < len(text) // 10


def test_permessage_deflate_off_is_not_negotiated() -> None:
    with run_server(echo, ws_per_message_deflate=False) as server, h2_client(server) as client:
        websocket = open_websocket(client, deflate=True)
        assert websocket.response.header(b"sec-websocket-extensions") is None
        websocket.send_text("plain")
        assert websocket.receive_message() == "plain"


async def close_with_reason(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        await echo(scope, receive, send)
        return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
    await receive()


def test_close_from_app_reaches_client_and_ends_the_stream() -> None:
    with run_server(close_with_reason) as server, h2_client(server) as client:
        websocket = open_websocket(client)
        assert websocket.wait_closed() == 4001
        assert websocket.frames.close_rcvd is not None
        assert websocket.frames.close_rcvd.reason == "bye now"
        assert websocket.response.reset_code is None
        # The connection and its other streams carry on.
        assert client.response(client.request("/")).body == b"plain http"


def test_close_from_client_reaches_app() -> None:
    recorder = Recorder(echo)
    with run_server(recorder) as server, h2_client(server) as client:
        websocket = open_websocket(client)
        websocket.send_close(4002, "client leaves")
        assert websocket.wait_closed() == 4002
        wait_until(recorder.disconnects)
    assert recorder.disconnects()[0]["code"] == 4002
    assert recorder.disconnects()[0]["reason"] == "client leaves"


async def close_before_accept(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.close"})


def test_close_before_accept_is_403() -> None:
    with run_server(close_before_accept) as server, h2_client(server) as client:
        response = client.response(open_stream(client))
    assert response.status == 403


async def fails_before_accept(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("app bug")


def test_app_error_before_accept_is_500() -> None:
    with run_server(fails_before_accept) as server, h2_client(server) as client:
        response = client.response(open_stream(client))
        assert response.status == 500
        assert client.response(client.request("/")).status == 500  # the connection lives on


async def denies(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"www-authenticate", b"Basic")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"who are you", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"?"})


def test_denial_response_is_the_apps_own() -> None:
    with run_server(denies) as server, h2_client(server) as client:
        response = client.response(open_stream(client))
    assert response.status == 401
    assert response.header(b"www-authenticate") == b"Basic"
    assert response.body == b"who are you?"


def test_client_reset_disconnects_the_app_and_spares_other_streams() -> None:
    recorder = Recorder(echo)
    with run_server(recorder) as server, h2_client(server) as client:
        websocket = open_echoed_websocket(client)
        plain = client.request("/")
        client.conn.reset_stream(websocket.stream_id, ErrorCodes.CANCEL)
        client.flush()
        wait_until(recorder.disconnects)
        assert client.response(plain).body == b"plain http"
        other = open_websocket(client)
        other.send_text("still here")
        assert other.receive_message() == "still here"
    assert recorder.disconnects()[0]["code"] == 1006


def test_connection_loss_disconnects_the_app_with_1006() -> None:
    recorder = Recorder(echo)
    with run_server(recorder) as server:
        with h2_client(server) as client:
            open_echoed_websocket(client)
        wait_until(recorder.disconnects)
    assert recorder.disconnects()[0]["code"] == 1006


def test_unmasked_frame_fails_only_its_websocket() -> None:
    with run_server(echo) as server, h2_client(server) as client:
        bad = open_websocket(client)
        good = open_websocket(client)
        client.send_body(bad.stream_id, frame(0x1, b"unmasked", mask=False), end_stream=False)
        assert bad.wait_closed() == 1002
        good.send_text("unaffected")
        assert good.receive_message() == "unaffected"


def test_other_protocol_is_501() -> None:
    with run_server(echo) as server, h2_client(server) as client:
        response = client.response(open_stream(client, protocol="webtransport"))
    assert response.status == 501


@pytest.mark.parametrize("version", [None, "8"])
def test_missing_or_other_version_is_400_naming_13(version: str | None) -> None:
    with run_server(echo) as server, h2_client(server) as client:
        response = client.response(open_stream(client, version=version))
    assert response.status == 400
    assert response.header(b"sec-websocket-version") == b"13"


def test_no_extended_connect_when_websockets_are_off() -> None:
    with (
        run_server(echo, ws="none") as server,
        H2Client(server.host, server.port, validate=False).start() as client,
    ):
        wait_for_settings(client)
        assert client.conn.remote_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 0
        stream_id = client.conn.get_next_available_stream_id()
        fields = [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"http"),
            (b":path", b"/ws"),
            (b":authority", b"test"),
            (b"sec-websocket-version", b"13"),
        ]
        client.conn.send_headers(stream_id, fields, end_stream=False)
        client.flush()
        response = client.response(stream_id)
    # RFC 8441 §3: :protocol without the setting is a malformed request.
    assert response.reset_code == ErrorCodes.PROTOCOL_ERROR


class SendCounter:
    """Sends 1 KiB messages until told to stop; records how many went before a send() had
    to wait, which is when the server buffers no more."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent_before_waiting: int | None = None
        self.finished = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        for number in range(self.total):
            sending = asyncio.ensure_future(send({"type": "websocket.send", "bytes": b"x" * 1024}))
            for _ in range(5):
                await asyncio.sleep(0)
            if not sending.done() and self.sent_before_waiting is None:
                self.sent_before_waiting = number
            await sending
        self.finished.set()
        await receive()


def test_send_waits_while_the_client_does_not_read() -> None:
    app = SendCounter(total=2000)
    with run_server(app) as server, h2_client(server) as client:
        websocket = open_websocket(client)
        # The client reads nothing: the stream's window (64 KiB) closes.
        wait_until(lambda: app.sent_before_waiting is not None)
        assert app.sent_before_waiting is not None
        assert app.sent_before_waiting < 200  # ~64 KiB in flight, ~64 KiB held
        for _ in range(2000):
            assert websocket.receive_message() == b"x" * 1024
        assert app.finished.wait(5)


class SlowReader:
    """Accepts, and reads nothing until ``go`` is set."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.received = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        while not self.go.is_set():
            await asyncio.sleep(0.01)
        while (await receive())["type"] == "websocket.receive":
            self.received += 1


def test_window_stays_closed_while_the_app_does_not_receive() -> None:
    app = SlowReader()
    with run_server(app) as server, h2_client(server) as client:
        try:
            websocket = open_websocket(client)
            sent = 0
            while sent < 1000:
                if client.conn.local_flow_control_window(websocket.stream_id) < 1100:
                    # Wait for a WINDOW_UPDATE; none comes while the app's queue is full.
                    try:
                        client.receive_once(timeout=0.5)
                    except TimeoutError:
                        break
                    continue
                websocket.send_binary(b"y" * 1024)
                sent += 1
            assert sent < 100  # 64 KiB of window, not re-opened
        finally:
            app.go.set()
        while sent < 1000:
            websocket.send_binary(b"y" * 1024)  # send_body waits for the window to reopen
            sent += 1
        websocket.send_close()
        assert websocket.wait_closed() == 1000
    assert app.received == 1000


def test_idle_websocket_outlives_the_stalled_stream_timeout_and_is_pinged() -> None:
    with (
        run_server(echo, h2_timeout_stalled_stream=0.2, ws_ping_interval=0.4) as server,
        h2_client(server) as client,
    ):
        websocket = open_websocket(client)
        pings = 0
        while pings < 4:  # 1.6 s idle: the server's tick has checked for stalls meanwhile
            if websocket.receive().opcode is Opcode.PING:
                pings += 1
        websocket.send_text("still open")
        assert websocket.receive_message() == "still open"
        assert websocket.response.reset_code is None


def test_graceful_shutdown_closes_with_1001() -> None:
    recorder = Recorder(echo)
    with run_server(recorder) as server, h2_client(server) as client:
        websocket = open_echoed_websocket(client)
        server.server.should_exit = True
        assert websocket.wait_closed() == 1001
        assert client.goaway is not None
        assert client.goaway.error_code == ErrorCodes.NO_ERROR
        client.wait_closed()
    assert recorder.disconnects()[0]["code"] == 1001


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    authority = trustme.CA()
    server_pem = tmp_path_factory.mktemp("h2ws") / "server.pem"
    authority.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(server_pem)
    )
    context = ssl.create_default_context()
    authority.configure_trust(context)
    context.set_alpn_protocols(["h2"])
    return server_pem, context


def test_websocket_over_tls_has_scheme_wss(certificate: tuple[Path, ssl.SSLContext]) -> None:
    server_pem, context = certificate
    with run_server(scope_reporter, ssl_certfile=str(server_pem)) as server:
        raw = socket.create_connection((server.host, server.port), timeout=5)
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        assert sock.selected_alpn_protocol() == "h2"
        with H2Client(server.host, server.port, sock=sock).start() as client:
            websocket = open_websocket(client, scheme="https")
            summary = websocket.receive_message()
    assert summary == repr(["2", "wss", "/ws", "", "", True, False, "2.5"])


def test_websocket_whose_client_stops_reading_is_dropped_after_timeout_response_write() -> None:
    from tests.conformance.test_h2_abuse import client_that_never_reads
    from tests.protocols.test_websocket_hostile import SendsToNobody

    app = SendsToNobody()
    with run_server(app, timeout_response_write=0.5) as server:
        with client_that_never_reads(server) as client:
            stream_id = open_stream(client)
            websocket = H2WebSocket(client, stream_id)
            assert websocket.wait_response().status == 200
            wait_until(lambda: bool(app.raised), timeout=10)
        assert isinstance(app.raised[0], OSError)  # ClientDisconnected
        assert [(m["type"], m["code"]) for m in app.then_received] == [
            ("websocket.disconnect", 1006)
        ]
