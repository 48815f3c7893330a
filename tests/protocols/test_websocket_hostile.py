"""Hostile WebSocket input in raw bytes (RFC 6455; hostile-inputs.md W1-W25): each is
answered as the RFC says, and the worker keeps serving the next client."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from hasten import Config
from tests.harness import RawClient, RunningServer, run_server
from tests.protocols.ws_support import (
    Recorder,
    close_payload,
    echo,
    frame,
    open_raw,
    read_close_code,
    read_frame,
    upgrade_request,
    wait_until,
)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(echo, ws_max_size=64 * 1024) as running:
        yield running


def assert_still_serving(server: RunningServer) -> None:
    with open_raw(server) as client:
        client.send(frame(0x1, b"ok"))
        assert read_frame(client) == (True, 0x1, b"ok")


def closes_with(server: RunningServer, data: bytes) -> int:
    with open_raw(server) as client:
        client.send(data)
        code = read_close_code(client)
        assert client.is_closed()
    assert_still_serving(server)
    return code


# -- the opening handshake (RFC 6455 §4.2) ------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [None, "abc", "YWJjZGVmZ2hpamtsbW5vcHFy", "dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ=="],
    ids=["missing", "short", "not-16-bytes", "two-keys"],
)
def test_bad_key_is_answered_400_without_calling_the_app(key: str | None) -> None:
    app = Recorder(echo)
    with run_server(app) as running, running.connect() as client:
        client.send(upgrade_request({"Sec-WebSocket-Key": key}))
        response = client.read_response()
        assert response.status == 400
        assert client.is_closed()
    assert app.scopes == []


def test_two_key_header_lines_are_answered_400(server: RunningServer) -> None:
    with server.connect() as client:
        client.send(
            upgrade_request().replace(
                b"\r\n\r\n", b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
        )
        assert client.read_response().status == 400


@pytest.mark.parametrize("version", ["8", None, "13, 8", "14"])
def test_unsupported_version_is_answered_426_naming_13(
    server: RunningServer, version: str | None
) -> None:
    with server.connect() as client:
        client.send(upgrade_request({"Sec-WebSocket-Version": version}))
        response = client.read_response()
        assert response.status == 426
        assert response.header("sec-websocket-version") == "13"
    assert_still_serving(server)


@pytest.mark.parametrize(("method", "version"), [("POST", "1.1"), ("PUT", "1.1"), ("GET", "1.0")])
def test_upgrade_that_is_not_a_get_over_http11_is_plain_http(
    server: RunningServer, method: str, version: str
) -> None:
    with server.connect() as client:
        client.send(upgrade_request(method=method, version=version))
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"plain http"


@pytest.mark.parametrize(
    "headers",
    [{"Connection": "keep-alive, Upgrade"}, {"Connection": "upgrade"}, {"Upgrade": "WebSocket"}],
)
def test_upgrade_tokens_are_case_insensitive_lists(
    server: RunningServer, headers: dict[str, str]
) -> None:
    with server.connect() as client:
        client.send(upgrade_request(headers))
        assert client.read_response(head_request=True).status == 101


def test_upgrade_without_connection_upgrade_is_plain_http(server: RunningServer) -> None:
    with server.connect() as client:
        client.send(upgrade_request({"Connection": None}))
        assert client.read_response().status == 200


@pytest.mark.parametrize("subprotocols", ["\x80\xff", "a, b,,c", "x" * 4000])
def test_odd_subprotocol_headers_do_not_break_the_handshake(
    server: RunningServer, subprotocols: str
) -> None:
    with server.connect() as client:
        client.send(upgrade_request({"Sec-WebSocket-Protocol": subprotocols}))
        # Bytes outside tokens may be refused; nothing crashes either way.
        assert client.read_response(head_request=True).status in (101, 400)
    assert_still_serving(server)


@pytest.mark.parametrize("byte", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85"])
def test_line_separator_bytes_in_upgrade_headers_are_refused(
    server: RunningServer, byte: str
) -> None:
    with server.connect() as client:
        client.send(upgrade_request({"Sec-WebSocket-Protocol": f"chat{byte}X-Evil: 1"}))
        response = client.read_response(head_request=True)
        assert response.status == 400


# -- frames (RFC 6455 §5) -------------------------------------------------------------------


def test_unmasked_frame_closes_with_1002(server: RunningServer) -> None:
    assert closes_with(server, frame(0x1, b"hello", mask=False)) == 1002


@pytest.mark.parametrize("rsv", [0b100, 0b010, 0b001])
def test_reserved_bits_close_with_1002(server: RunningServer, rsv: int) -> None:
    # Without permessage-deflate negotiated, RSV1 is as reserved as the others.
    assert closes_with(server, frame(0x1, b"x", rsv=rsv)) == 1002


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_close_with_1002(server: RunningServer, opcode: int) -> None:
    assert closes_with(server, frame(opcode, b"x")) == 1002


def test_control_frame_over_125_bytes_closes_with_1002(server: RunningServer) -> None:
    assert closes_with(server, frame(0x9, b"p" * 126)) == 1002


def test_fragmented_control_frame_closes_with_1002(server: RunningServer) -> None:
    assert closes_with(server, frame(0x9, b"p", fin=False)) == 1002


def test_continuation_without_a_start_closes_with_1002(server: RunningServer) -> None:
    assert closes_with(server, frame(0x0, b"x")) == 1002


def test_new_message_inside_a_fragmented_one_closes_with_1002(server: RunningServer) -> None:
    assert closes_with(server, frame(0x1, b"a", fin=False) + frame(0x1, b"b")) == 1002


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xe2\x82"],
    ids=["ff", "overlong", "surrogate", "above-10ffff", "truncated"],
)
def test_invalid_utf8_text_closes_with_1007(server: RunningServer, payload: bytes) -> None:
    assert closes_with(server, frame(0x1, payload)) == 1007


def test_invalid_utf8_is_failed_before_the_message_ends(server: RunningServer) -> None:
    # The fragment is invalid on its own; the server must not wait for FIN (RFC 6455 §8.1).
    assert closes_with(server, frame(0x1, b"ok\xff", fin=False)) == 1007


def test_utf8_split_across_fragments_is_accepted(server: RunningServer) -> None:
    with open_raw(server) as client:
        client.send(frame(0x1, b"\xe2\x82", fin=False) + frame(0x0, b"\xac"))
        assert read_frame(client) == (True, 0x1, "€".encode())


def test_close_frame_with_one_byte_payload_closes_with_1002(server: RunningServer) -> None:
    assert closes_with(server, frame(0x8, b"\x03")) == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999])
def test_invalid_close_code_closes_with_1002(server: RunningServer, code: int) -> None:
    assert closes_with(server, frame(0x8, close_payload(code))) == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 3999, 4000, 4999])
def test_valid_close_code_is_echoed(server: RunningServer, code: int) -> None:
    assert closes_with(server, frame(0x8, close_payload(code, b"r" * 123))) == code


def test_close_reason_with_invalid_utf8_closes_with_1007(server: RunningServer) -> None:
    assert closes_with(server, frame(0x8, close_payload(1000, b"\xff"))) == 1007


def test_64_bit_length_with_the_high_bit_set_is_refused_before_allocating(
    server: RunningServer,
) -> None:
    head = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + b"\x00\x00\x00\x00"
    assert closes_with(server, head) in (1002, 1009)


def test_huge_declared_length_closes_with_1009_at_once(server: RunningServer) -> None:
    head = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 62) + b"\x00\x00\x00\x00"
    assert closes_with(server, head) == 1009


def test_many_small_fragments_past_the_limit_close_with_1009(server: RunningServer) -> None:
    fragments = frame(0x2, b"a" * 1024, fin=False) + frame(0x0, b"a" * 1024, fin=False) * 80
    assert closes_with(server, fragments) == 1009


def test_data_after_the_close_frame_is_ignored(server: RunningServer) -> None:
    with open_raw(server) as client:
        client.send(frame(0x8, close_payload(1000)) + frame(0x1, b"ignored"))
        _, opcode, _ = read_frame(client)
        assert opcode == 0x8
        assert client.read_all(timeout=2) == b""
    assert_still_serving(server)


def test_ping_flood_from_a_peer_that_never_reads_is_bounded(server: RunningServer) -> None:
    with open_raw(server) as client:
        client.sock.settimeout(0.5)
        sent = 0
        ping = frame(0x9, b"p" * 125) * 512
        try:
            while sent < 256 * 1024 * 1024:
                client.sock.sendall(ping)
                sent += len(ping)
        except TimeoutError:
            pass
        # The server stops reading while its pongs pile up unread.
        assert sent < 128 * 1024 * 1024
    assert_still_serving(server)


def test_close_between_fragments_is_a_clean_close(server: RunningServer) -> None:
    # RFC 6455 §5.4: control frames, close included, may come between fragments.
    data = frame(0x1, b"frag1", fin=False) + frame(0x8, close_payload(1000)) + frame(0x0, b"x")
    assert closes_with(server, data) == 1000


# -- memory held for an app that does not read (RFC 6455 §10.4) -----------------------------


def _deflate(payload: bytes) -> bytes:
    """One permessage-deflate message body (RFC 7692 §7.2.1)."""
    compressor = zlib.compressobj(wbits=-12)
    return (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def _open_deflate(server: RunningServer) -> RawClient:
    client = server.connect()
    offer = "permessage-deflate; client_max_window_bits"
    client.send(upgrade_request({"Sec-WebSocket-Extensions": offer}))
    response = client.read_response(head_request=True)
    assert response.status == 101, response
    assert "permessage-deflate" in (response.header("sec-websocket-extensions") or "")
    return client


def _queued_payload_bytes(server: RunningServer) -> int:
    """The payload bytes of the messages the server holds for its WebSocket apps."""
    state = server.server.state
    assert state is not None
    total = 0
    for conn in list(state.connections):
        websocket = getattr(conn, "websocket", None)
        if websocket is not None:
            for message in list(websocket.incoming):
                total += len(message.get("bytes") or message.get("text") or b"")
    return total


def test_queue_of_an_app_that_does_not_read_is_bounded_in_bytes_when_compressed() -> None:
    # 40 messages of 1 MiB of zeros are 40 KiB on the wire: bounded by count alone, the
    # server inflated and queued all of them (the count stops the socket, not the parsing
    # of a read already taken), 40 MiB for one connection.
    release = threading.Event()

    async def reads_late(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while not release.is_set():
            await asyncio.sleep(0.01)
        count = 0
        while count < 40:
            message = await receive()
            assert message["type"] == "websocket.receive"
            assert len(message["bytes"]) == 1024 * 1024
            count += 1
        await send({"type": "websocket.send", "text": str(count)})

    limit = 1024 * 1024
    settings = {"ws_max_size": limit, "ws_max_queue_bytes": limit}
    with run_server(reads_late, **settings) as running, _open_deflate(running) as client:
        message = frame(0x2, _deflate(bytes(limit)), rsv=0b100)
        client.send(message * 40)
        wait_until(lambda: _queued_payload_bytes(running) >= limit)
        # Room for one more message and one compressed slice's overshoot, no more.
        assert _queued_payload_bytes(running) <= 3 * limit
        release.set()
        # Every message held back is read once the app takes the queued ones.
        _, opcode, payload = read_frame(client)
        inflated = zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")
        assert (opcode, inflated) == (0x1, b"40")


def test_permessage_deflate_uses_the_windows_of_websockets_serve() -> None:
    # 4 KiB windows and memLevel 5: ~21 KiB of zlib state per connection instead of 87 KiB.
    with run_server(echo) as running, running.connect() as client:
        offer = "permessage-deflate; client_max_window_bits"
        client.send(upgrade_request({"Sec-WebSocket-Extensions": offer}))
        extensions = client.read_response(head_request=True).header("sec-websocket-extensions")
        assert extensions is not None
        assert "server_max_window_bits=12" in extensions
        assert "client_max_window_bits=12" in extensions


def test_message_in_too_many_fragments_closes_with_1009() -> None:
    # Empty fragments add nothing to the size limit, only to the list kept for the message.
    with run_server(echo, ws_max_fragments=100) as server:
        fragments = frame(0x2, b"", fin=False) + frame(0x0, b"", fin=False) * 100
        assert closes_with(server, fragments) == 1009


def test_message_within_the_fragment_limit_is_received() -> None:
    with run_server(echo, ws_max_fragments=100) as server, open_raw(server) as client:
        parts = [frame(0x2, b"a", fin=False), *[frame(0x0, b"b", fin=False)] * 98]
        client.send(b"".join(parts) + frame(0x0, b"c"))
        assert read_frame(client) == (True, 0x2, b"a" + b"b" * 98 + b"c")


def test_default_fragment_limit_is_131072() -> None:
    # Room for Autobahn's 4 MiB in 64-byte fragments (9.3.1); the overhead it bounds, an
    # object and a list slot per fragment, stays under ws_max_size's default.
    assert Config(app=echo).ws_max_fragments == 131072


class SendsToNobody:
    """Accepts, sends up to 64 MiB in 64 KiB messages; records what its send() raised and
    what its receive() said next."""

    def __init__(self) -> None:
        self.raised: list[BaseException] = []
        self.then_received: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            for _ in range(1024):
                await send({"type": "websocket.send", "bytes": b"x" * 65536})
        except BaseException as exc:
            self.raised.append(exc)
            if isinstance(exc, OSError):
                self.then_received.append(await receive())
            raise


def test_peer_that_stops_reading_is_dropped_after_timeout_response_write() -> None:
    app = SendsToNobody()
    with run_server(app, timeout_response_write=0.5) as running:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(5)
        sock.connect((running.host, running.port))
        with RawClient(sock) as client:
            client.send(upgrade_request({"Sec-WebSocket-Extensions": None}))
            assert client.read_response(head_request=True).status == 101
            wait_until(lambda: bool(app.raised), timeout=10)
        assert isinstance(app.raised[0], OSError)  # ClientDisconnected
        assert [(m["type"], m["code"]) for m in app.then_received] == [
            ("websocket.disconnect", 1006)
        ]
