"""Hostile HTTP/2 clients (hostile-inputs.md §2.6): each abuse is bounded, answered with the
right GOAWAY or RST_STREAM code, and the server keeps serving everybody else.

Well-formed traffic comes from h2's client state machine; frames it refuses to build
(floods, protocol violations) are serialised with hyperframe and hpack.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import h2.settings
import pytest
from h2.errors import ErrorCodes
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tests.harness import RunningServer, run_server
from tests.protocols.h2client import PREFACE, H2Client, parse_frames

REQUEST_HEADERS = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "t")]


class AbuseApp:
    """``/hang`` waits until cancelled; ``/body`` reads the body; ``/big`` answers 100 kB."""

    def __init__(self) -> None:
        self.disconnects = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/hang":
            await asyncio.sleep(3600)
        if scope["path"] == "/body":
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
        if scope["path"] == "/big":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x" * 100000})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def abuse() -> Iterator[tuple[RunningServer, AbuseApp]]:
    app = AbuseApp()
    with run_server(app, h2_timeout_stalled_stream=0.3, timeout_keep_alive=2) as server:
        yield server, app
        assert_still_serving(server)


def assert_still_serving(server: RunningServer) -> None:
    """A fresh connection is answered promptly after the abuse."""
    started = time.monotonic()
    with H2Client(server.host, server.port).start() as client:
        assert client.response(client.request("/")).status == 200
    assert time.monotonic() - started < 2


def raw_connection(server: RunningServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    return sock


def goaway_code_after(server: RunningServer, payload: bytes, *, chunk: int = 65536) -> int:
    """Send ``payload`` on a fresh connection, return the error code of the GOAWAY."""
    sock = raw_connection(server)
    client = H2Client(server.host, server.port, sock=sock)

    def send_all() -> None:
        try:
            for start in range(0, len(payload), chunk):
                sock.sendall(payload[start : start + chunk])
        except OSError:
            pass  # closed mid-flood

    # Read while sending, as a client would: the server's answers never block its input.
    sender = threading.Thread(target=send_all)
    sender.start()
    try:
        return client.goaway_code(timeout=10)
    finally:
        sock.close()
        sender.join(10)


def headers_frame(encoder: Encoder, stream_id: int, *, end_stream: bool = True, **kw: Any) -> bytes:
    headers = kw.get("headers", REQUEST_HEADERS)
    frame = HeadersFrame(stream_id, encoder.encode(headers))
    frame.flags.add("END_HEADERS")
    if end_stream:
        frame.flags.add("END_STREAM")
    return frame.serialize()


# -- floods (RFC 9113 §10.5) -------------------------------------------------------------------


def test_rapid_reset_gets_goaway_enhance_your_calm(abuse: tuple[RunningServer, AbuseApp]) -> None:
    server, _ = abuse
    encoder = Encoder()
    hang = [*REQUEST_HEADERS[:1], (":path", "/hang"), *REQUEST_HEADERS[2:]]
    frames = []
    for stream_id in range(1, 2 * 5000, 2):  # CVE-2023-44487
        frames.append(headers_frame(encoder, stream_id, end_stream=False, headers=hang))
        frames.append(RstStreamFrame(stream_id, error_code=ErrorCodes.CANCEL).serialize())
    assert goaway_code_after(server, b"".join(frames)) == ErrorCodes.ENHANCE_YOUR_CALM
    state = server.server.state
    assert state is not None
    deadline = time.monotonic() + 2
    while state.tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not state.tasks  # every app the client reset was cancelled


def test_streams_the_server_resets_count_toward_the_reset_budget(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    # MadeYouReset (CVE-2025-8671): DATA after END_STREAM makes the server reset the stream
    # while its app runs on; the live streams stay capped and the connection is cut.
    server, _ = abuse
    encoder = Encoder()
    hang = [*REQUEST_HEADERS[:1], (":path", "/hang"), *REQUEST_HEADERS[2:]]
    frames = []
    for stream_id in range(1, 2 * 3000, 2):
        frames.append(headers_frame(encoder, stream_id, headers=hang))
        frames.append(DataFrame(stream_id, b"x").serialize())
    assert goaway_code_after(server, b"".join(frames)) in (
        ErrorCodes.ENHANCE_YOUR_CALM,
        ErrorCodes.STREAM_CLOSED,
    )
    state = server.server.state
    assert state is not None
    deadline = time.monotonic() + 2
    while state.tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not state.tasks


@pytest.mark.parametrize(
    "frame",
    [
        PingFrame(0, b"12345678"),  # CVE-2019-9512
        SettingsFrame(0),  # CVE-2019-9515
        WindowUpdateFrame(0, 1),
    ],
    ids=["ping", "settings", "window_update"],
)
def test_control_frame_flood_gets_goaway_enhance_your_calm(
    abuse: tuple[RunningServer, AbuseApp], frame: Any
) -> None:
    server, _ = abuse
    assert goaway_code_after(server, frame.serialize() * 20000) == ErrorCodes.ENHANCE_YOUR_CALM


def test_empty_data_frame_flood_gets_goaway(abuse: tuple[RunningServer, AbuseApp]) -> None:
    server, _ = abuse  # CVE-2019-9518
    body = [*REQUEST_HEADERS[:1], (":path", "/body"), *REQUEST_HEADERS[2:]]
    payload = headers_frame(Encoder(), 1, end_stream=False, headers=body)
    payload += DataFrame(1, b"").serialize() * 20000
    assert goaway_code_after(server, payload) == ErrorCodes.ENHANCE_YOUR_CALM


CLOSED_STREAM_FLOODS = {
    "data": DataFrame(1, b""),  # h2 answers each with RST_STREAM STREAM_CLOSED
    "window_update": WindowUpdateFrame(1, 1),  # h2 drops each without an event
    "rst_stream": RstStreamFrame(1, error_code=ErrorCodes.CANCEL),
}


@pytest.mark.parametrize("frame", CLOSED_STREAM_FLOODS.values(), ids=CLOSED_STREAM_FLOODS.keys())
def test_flood_on_a_finished_stream_gets_goaway_enhance_your_calm(
    abuse: tuple[RunningServer, AbuseApp], frame: Any
) -> None:
    # Frames on a closed stream are answered (or dropped) by h2 itself, with no event:
    # they spend the control budget all the same (RFC 9113 §10.5, CVE-2019-9518 class).
    server, _ = abuse
    with H2Client(server.host, server.port).start() as client:
        assert client.response(client.request("/")).status == 200
        client.send_raw(frame.serialize() * 5000)
        assert client.goaway_code() == ErrorCodes.ENHANCE_YOUR_CALM


def test_data_flood_on_a_reset_stream_gets_goaway_enhance_your_calm(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    server, _ = abuse
    with H2Client(server.host, server.port).start() as client:
        stream_id = client.request("/hang", end_stream=False)
        client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
        client.flush()
        client.send_raw(DataFrame(stream_id, b"").serialize() * 5000)
        assert client.goaway_code() == ErrorCodes.ENHANCE_YOUR_CALM


def test_settings_ack_flood_gets_goaway_enhance_your_calm(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    server, _ = abuse  # an ACK of nothing: h2 takes it without a word
    ack = SettingsFrame(0, flags=["ACK"]).serialize()
    assert goaway_code_after(server, ack * 5000) == ErrorCodes.ENHANCE_YOUR_CALM


def test_flood_without_reading_does_not_grow_the_write_buffer(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    # The client never reads the PING ACKs: the server stops reading (backpressure) or
    # gives up; either way the connection ends and the process stays small.
    server, _ = abuse
    sock = raw_connection(server)
    sock.settimeout(10)
    flood = PingFrame(0, b"12345678").serialize() * 4000
    try:
        for _ in range(50):
            sock.sendall(flood)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    sock.close()


# -- header blocks (RFC 9113 §10.5.1, RFC 7541 §7) -------------------------------------------


def test_continuation_flood_is_cut_before_decoding(abuse: tuple[RunningServer, AbuseApp]) -> None:
    server, _ = abuse  # CVE-2024-27316 family
    first = HeadersFrame(1, Encoder().encode(REQUEST_HEADERS))
    frames = [first.serialize()]
    for _ in range(60):  # 60 frames of 16 KiB, never END_HEADERS
        frames.append(ContinuationFrame(1, b"\x00" * 16000).serialize())
    code = goaway_code_after(server, b"".join(frames))
    assert code in (ErrorCodes.ENHANCE_YOUR_CALM, ErrorCodes.PROTOCOL_ERROR)


def test_endless_empty_continuation_frames_are_refused(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    server, _ = abuse
    first = HeadersFrame(1, Encoder().encode(REQUEST_HEADERS)).serialize()
    payload = first + ContinuationFrame(1, b"").serialize() * 10000
    assert goaway_code_after(server, payload) in (
        ErrorCodes.ENHANCE_YOUR_CALM,
        ErrorCodes.PROTOCOL_ERROR,
    )


def test_hpack_bomb_is_refused(abuse: tuple[RunningServer, AbuseApp]) -> None:
    server, _ = abuse  # CVE-2016-6581: one 4 KB entry referenced many times
    encoder = Encoder()
    bomb = REQUEST_HEADERS + [("x-bomb", "a" * 4000)] * 100
    payload = headers_frame(encoder, 1, headers=bomb)
    assert len(payload) < 16384
    assert goaway_code_after(server, payload) == ErrorCodes.ENHANCE_YOUR_CALM


# -- stalls ------------------------------------------------------------------------------------


def test_stream_that_never_sends_its_body_is_reset(abuse: tuple[RunningServer, AbuseApp]) -> None:
    server, app = abuse
    with H2Client(server.host, server.port).start() as client:
        stream_id = client.request("/body", end_stream=False)
        response = client.response(stream_id, timeout=5)
    assert response.reset_code == ErrorCodes.CANCEL
    deadline = time.monotonic() + 2
    while not app.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.disconnects == 1  # the app waiting for the body is told


def test_zero_window_stall_is_reset(abuse: tuple[RunningServer, AbuseApp]) -> None:
    server, _ = abuse
    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}
    with H2Client(server.host, server.port, settings=settings).start() as client:
        response = client.response(client.request("/big"), timeout=5)
    assert response.reset_code == ErrorCodes.CANCEL
    assert response.body == b""


def test_data_dribbled_open_a_byte_at_a_time_gets_goaway_enhance_your_calm(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    """CVE-2019-9511: a one-byte window reopened a byte at a time makes the server send a
    frame per byte; each WINDOW_UPDATE spends the control budget and a byte of DATA earns
    almost none of it back. (A small window refilled whole pays for itself: see
    test_http2_clients' 1023-byte window.)"""
    server, _ = abuse
    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1}
    with H2Client(server.host, server.port, settings=settings).start() as client:
        stream_id = client.request("/big")
        client.wait_for(lambda: client.goaway is not None, timeout=20)
        received = len(client.responses[stream_id].body)
    assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert 500 < received < 10_000


class StreamsToNobody:
    """Streams up to 64 MiB of response; records what its send() raised, and what its
    receive() said next."""

    def __init__(self) -> None:
        self.raised: list[BaseException] = []
        self.then_received: list[Any] = []
        self.sent = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = {"type": "http.response.body", "body": b"x" * 65536, "more_body": True}
        try:
            for _ in range(1024):
                await send(chunk)
                self.sent += 65536
        except BaseException as exc:
            self.raised.append(exc)
            if isinstance(exc, OSError):
                self.then_received.append(await receive())
            raise


def client_that_never_reads(server: RunningServer) -> H2Client:
    """A client whose flow-control windows are wide open and whose socket buffer is small:
    only the server's write buffer can hold the response back."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(5)
    sock.connect((server.host, server.port))
    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
    client = H2Client(server.host, server.port, sock=sock, settings=settings).start()
    client.conn.increment_flow_control_window(2**31 - 1 - 65535)
    client.flush()
    return client


def server_write_paused(server: RunningServer) -> bool:
    state = server.server.state
    assert state is not None
    return any(conn.flow.write_paused for conn in list(state.connections))


def test_app_that_sends_without_yielding_waits_for_a_client_that_does_not_read() -> None:
    # With the windows wide open, only the socket holds the response back: h2's buffer was
    # written once per loop turn, so an app that never yields queued all 64 MiB in it.
    app = StreamsToNobody()
    with run_server(app) as server, client_that_never_reads(server) as client:
        client.request("/")
        wait_until(lambda: server_write_paused(server))
        assert app.sent < 16 * 1024 * 1024


def test_client_that_stops_reading_is_dropped_after_timeout_response_write() -> None:
    app = StreamsToNobody()
    with run_server(app, timeout_response_write=0.5) as server:
        with client_that_never_reads(server) as client:
            client.request("/")
            wait_until(lambda: bool(app.raised), timeout=10)
        assert isinstance(app.raised[0], OSError)  # ClientDisconnected
        assert [message["type"] for message in app.then_received] == ["http.disconnect"]


def test_graceful_shutdown_ends_while_a_client_does_not_read() -> None:
    app = StreamsToNobody()
    clients: list[H2Client] = []
    try:
        with run_server(app, timeout_response_write=0.5) as server:
            clients.append(client_that_never_reads(server))
            clients[0].request("/")
            wait_until(lambda: server_write_paused(server))
        # Leaving the block shut the server down (no timeout_graceful_shutdown): it ended.
        assert isinstance(app.raised[0], OSError)
    finally:
        for client in clients:
            client.close()


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- protocol violations (RFC 9113) ----------------------------------------------------------


def test_more_streams_than_allowed_are_refused() -> None:
    """RFC 9113 §5.1.2: a stream over the advertised limit is refused on its own (a stream
    error the client may retry), and the streams within the limit go on."""
    app = AbuseApp()
    with run_server(app, h2_max_concurrent_streams=4) as server:
        encoder = Encoder()
        hang = [*REQUEST_HEADERS[:1], (":path", "/hang"), *REQUEST_HEADERS[2:]]
        payload = b"".join(headers_frame(encoder, n, headers=hang) for n in range(1, 12, 2))
        with raw_connection(server) as sock:
            sock.sendall(payload)
            frames: list[Any] = []
            received = b""
            deadline = time.monotonic() + 5
            while len([f for f in frames if isinstance(f, RstStreamFrame)]) < 2:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                received += sock.recv(65536)
                frames = parse_frames(received)
        resets = {f.stream_id: f.error_code for f in frames if isinstance(f, RstStreamFrame)}
        assert resets == {9: ErrorCodes.REFUSED_STREAM, 11: ErrorCodes.REFUSED_STREAM}
        assert not any(isinstance(f, GoAwayFrame) for f in frames)
        assert_still_serving(server)


def test_wrong_preface_gets_protocol_error() -> None:
    with run_server(AbuseApp(), http="h2") as server:
        sock = socket.create_connection((server.host, server.port), timeout=5)
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + SettingsFrame(0).serialize())
        client = H2Client(server.host, server.port, sock=sock)
        client.conn.initiate_connection()
        assert client.goaway_code() == ErrorCodes.PROTOCOL_ERROR  # §3.4
        sock.close()
        assert_still_serving(server)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (HeadersFrame(2, b"\x82", flags=["END_HEADERS"]).serialize(), ErrorCodes.PROTOCOL_ERROR),
        (WindowUpdateFrame(0, 0).serialize(), ErrorCodes.PROTOCOL_ERROR),  # §6.9
        (b"\x00\x00\x07\x06\x00\x00\x00\x00\x001234567", ErrorCodes.FRAME_SIZE_ERROR),  # §6.7
        (b"\x00\x40\x01\x00\x00\x00\x00\x00\x01" + b"\x00" * 16385, ErrorCodes.FRAME_SIZE_ERROR),
        (SettingsFrame(0, settings={2: 2}).serialize(), ErrorCodes.PROTOCOL_ERROR),
        (SettingsFrame(0, settings={4: 2**31}).serialize(), ErrorCodes.FLOW_CONTROL_ERROR),
        (SettingsFrame(0, settings={5: 100}).serialize(), ErrorCodes.PROTOCOL_ERROR),
        (RstStreamFrame(7, error_code=8).serialize(), ErrorCodes.PROTOCOL_ERROR),
        (b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\x80", ErrorCodes.COMPRESSION_ERROR),
    ],
    # §5.1.1 even stream id; §6.9 increment 0; §6.7 PING length; §4.2 frame size; §6.5.2
    # setting values; §6.4 RST_STREAM on an idle stream; RFC 7541 §6.1 index 0
    ids=[
        "even_stream_id",
        "window_update_zero",
        "ping_length",
        "oversized_frame",
        "enable_push_2",
        "initial_window_too_large",
        "max_frame_size_too_small",
        "reset_idle_stream",
        "hpack_index_zero",
    ],
)
def test_protocol_violation_gets_goaway(
    abuse: tuple[RunningServer, AbuseApp], payload: bytes, expected: int
) -> None:
    server, _ = abuse
    assert goaway_code_after(server, payload) == expected


def test_content_length_not_matching_the_data_is_refused(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    server, _ = abuse  # §8.1.1
    body = [
        *REQUEST_HEADERS[:1],
        (":path", "/body"),
        *REQUEST_HEADERS[2:],
        ("content-length", "10"),
    ]
    payload = headers_frame(Encoder(), 1, end_stream=False, headers=body)
    payload += DataFrame(1, b"12345", flags=["END_STREAM"]).serialize()
    assert goaway_code_after(server, payload) == ErrorCodes.PROTOCOL_ERROR


def test_unknown_frame_types_and_settings_are_ignored(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    server, _ = abuse  # §4.1, §5.5, §6.5.2
    with H2Client(server.host, server.port).start() as client:
        client.send_raw(b"\x00\x00\x03\xfa\x00\x00\x00\x00\x00abc")
        client.send_raw(SettingsFrame(0, settings={0x99: 1}).serialize())
        assert client.response(client.request("/")).status == 200


GET = [(":method", "GET"), (":path", "/"), (":scheme", "http")]
POST_BODY = [(":method", "POST"), (":path", "/body"), (":scheme", "http"), (":authority", "t")]
MALFORMED_REQUESTS = {
    # §8.2.1 field names and values (h2 CVE-2025-57804 family)
    "uppercase_name": [*GET, ("Content-Type", "x")],
    "name_with_space": [*GET, ("a b", "x")],
    "name_with_colon": [*GET, ("a:b", "x")],
    "empty_name": [*GET, ("", "x")],
    "value_with_cr": [*GET, ("x-a", "1\r2")],
    "value_with_lf": [*GET, ("x-a", "1\n2")],
    "value_with_nul": [*GET, ("x-a", "1\x002")],
    "value_with_leading_space": [*GET, ("x-a", " 1")],
    "value_with_trailing_tab": [*GET, ("x-a", "1\t")],
    # §8.2.2 connection-specific fields
    "connection": [*GET, ("connection", "close")],
    "keep_alive": [*GET, ("keep-alive", "5")],
    "proxy_connection": [*GET, ("proxy-connection", "close")],
    "transfer_encoding": [*GET, ("transfer-encoding", "chunked")],
    "upgrade": [*GET, ("upgrade", "websocket")],
    "te_gzip": [*GET, ("te", "gzip")],
    # §8.3, §8.3.1 pseudo-header fields
    "missing_method": GET[1:],
    "missing_scheme": GET[:2],
    "missing_path": [GET[0], GET[2]],
    "empty_path": [GET[0], (":path", ""), GET[2]],
    "path_not_absolute": [GET[0], (":path", "x"), GET[2]],
    "duplicate_path": [*GET, (":path", "/again")],
    "pseudo_after_regular": [*GET[:2], ("x-a", "1"), GET[2]],
    "unknown_pseudo": [*GET, (":foo", "x")],
    "status_in_request": [*GET, (":status", "200")],
    # §8.3.1: the request line's parts, held to HTTP/1.1's rules (RFC 9110 §9.1 token
    # method, RFC 9112 §3.2 / RFC 3986 target without fragment, RFC 9110 §7.2 host)
    "path_with_vt": [GET[0], (":path", "/a\x0bb"), GET[2]],
    "path_with_del": [GET[0], (":path", "/a\x7f"), GET[2]],
    "path_with_space": [GET[0], (":path", "/a b"), GET[2]],
    "path_with_fragment": [GET[0], (":path", "/a#frag"), GET[2]],
    "method_with_space": [(":method", "GE T"), *GET[1:]],
    "method_with_esc": [(":method", "\x1bGET"), *GET[1:]],
    "authority_with_space": [*GET, (":authority", "a b")],
    "authority_with_userinfo": [*GET, (":authority", "user@host")],
    "authority_with_path": [*GET, (":authority", "host/path")],
    "empty_authority": [*GET, (":authority", "")],
    "invalid_host_field": [*GET, ("host", "a/b")],
    # §8.3.1 host against :authority
    "two_hosts": [*GET, ("host", "a"), ("host", "a")],
    "host_differs_from_authority": [*GET, (":authority", "a"), ("host", "b")],
    # §8.5 and RFC 8441 §4: CONNECT forms
    "connect_with_path": [(":method", "CONNECT"), (":authority", "a:1"), (":path", "/")],
    "connect_without_authority": [(":method", "CONNECT")],
    # (:protocol without the setting: test_websocket_h2, with --ws none)
    "extended_connect_without_authority": [
        (":method", "CONNECT"), (":protocol", "websocket"), *GET[1:],
    ],
    "protocol_on_get": [*GET, (":authority", "a"), (":protocol", "websocket")],
}  # fmt: skip


@pytest.mark.parametrize("fields", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
def test_malformed_request_resets_only_its_stream(
    abuse: tuple[RunningServer, AbuseApp], fields: list[tuple[str, str]]
) -> None:
    """RFC 9113 §8.1.1: a malformed request is a stream error; the connection goes on."""
    server, _ = abuse
    with H2Client(server.host, server.port, validate=False).start() as client:
        raw = [(name.encode(), value.encode()) for name, value in fields]
        client.conn.send_headers(1, raw, end_stream=True)
        client.flush()
        assert client.response(1).reset_code == ErrorCodes.PROTOCOL_ERROR
        response = client.response(client.request("/"))
        assert (response.status, response.body, client.goaway) == (200, b"ok", None)


def test_pseudo_header_in_request_trailers_resets_the_stream(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    server, _ = abuse  # §8.1: trailers carry no pseudo-header fields
    with H2Client(server.host, server.port, validate=False).start() as client:
        stream_id = client.request("/hang", body=b"x", end_stream=False)
        client.conn.send_headers(stream_id, [(b":path", b"/")], end_stream=True)
        client.flush()
        assert client.response(stream_id).reset_code == ErrorCodes.PROTOCOL_ERROR
        assert client.response(client.request("/")).status == 200


def test_valid_request_trailers_are_accepted_and_dropped(
    abuse: tuple[RunningServer, AbuseApp],
) -> None:
    server, _ = abuse
    with H2Client(server.host, server.port).start() as client:
        stream_id = 1
        # Head, body and trailers leave in one write, so the app sees the body complete.
        client.conn.send_headers(stream_id, [(n.encode(), v.encode()) for n, v in POST_BODY])
        client.conn.send_data(stream_id, b"x")
        client.conn.send_headers(stream_id, [(b"x-checksum", b"1")], end_stream=True)
        client.flush()
        response = client.response(stream_id)
        assert (response.status, response.body, response.reset_code) == (200, b"ok", None)


def test_malformed_request_flood_spends_the_reset_budget() -> None:
    # Each malformed request provokes a server reset (CVE-2025-8671). Fewer than
    # max_concurrent_streams at once: more is a connection error of its own (§5.1.2).
    encoder = Encoder()
    malformed = [*REQUEST_HEADERS, ("connection", "close")]
    frames = [headers_frame(encoder, stream_id, headers=malformed) for stream_id in range(1, 80, 2)]
    with run_server(AbuseApp(), h2_max_reset_streams=20) as server:
        assert goaway_code_after(server, b"".join(frames)) == ErrorCodes.ENHANCE_YOUR_CALM
        assert_still_serving(server)
