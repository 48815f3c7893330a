"""Flow over an HTTP/1.1 connection: read and write backpressure, the client going away,
--limit-concurrency, --timeout-keep-alive and the access log."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import pytest

from hasten.asgi import ClientDisconnected
from hasten.protocols.flow import READ_HIGH_WATER
from tests.harness import RunningServer, request, run_server
from tests.protocols.http1_apps import captured, echo_path, hello, wait_for

LOOPS = ["asyncio", "uvloop"]
MiB = 1024 * 1024


def only_connection(server: RunningServer) -> Any:
    state = server.server.state
    assert state is not None
    connections = wait_for(lambda: list(state.connections))
    assert len(connections) == 1
    return connections[0]


# -- read backpressure ---------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_large_body_to_a_slow_reader_is_not_buffered_whole(loop: str) -> None:
    size = 4 * MiB
    release = threading.Event()
    received: list[int] = []

    async def slow_reader(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        received.append(len(message["body"]))
        while not release.is_set():
            await asyncio.sleep(0.01)
        while message.get("more_body"):
            message = await receive()
            received.append(len(message["body"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(sum(received)).encode()})

    with run_server(slow_reader, loop=loop) as server, server.connect() as client:
        head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size
        sender = threading.Thread(target=client.send, args=(head + b"x" * size,), daemon=True)
        sender.start()
        try:
            conn = only_connection(server)
            wait_for(lambda: received)
            # The server must stop reading once a bounded amount is buffered for the app;
            # the kernel's socket buffers (tens of MiB on loopback) hold the rest.
            wait_for(lambda: conn.cycle.body_size >= READ_HIGH_WATER)
            wait_for(lambda: not conn.transport.is_reading())
            time.sleep(0.2)
            assert not conn.transport.is_reading()
            assert conn.cycle.body_size < READ_HIGH_WATER + 1 * MiB
        finally:
            release.set()
        sender.join(10)
        assert not sender.is_alive()
        assert client.read_response().body == str(size).encode()
    assert len(received) > 2


# -- write backpressure --------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_send_waits_while_the_client_does_not_read(loop: str) -> None:
    chunk = b"y" * (64 * 1024)
    total_chunks = 256  # 16 MiB: far more than the socket buffers hold
    sent: list[int] = []
    finished = threading.Event()

    async def big_stream(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        length = str(total_chunks * len(chunk)).encode()
        headers = [(b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(total_chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent.append(1)
        await send({"type": "http.response.body", "body": b""})
        finished.set()

    with run_server(big_stream, loop=loop) as server, server.connect(timeout=20) as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.send(request())
        conn = only_connection(server)
        wait_for(lambda: sent)
        # Wait until send() stops making progress, then check the server holds little.
        previous = -1
        deadline = time.monotonic() + 5
        while len(sent) != previous and time.monotonic() < deadline:
            previous = len(sent)
            time.sleep(0.1)
        assert len(sent) < total_chunks
        assert conn.flow.write_paused
        assert conn.transport.get_write_buffer_size() < 4 * MiB
        client.sock.settimeout(10)
        client._read_until(b"\r\n\r\n")
        received = len(client.buffer)
        while received < total_chunks * len(chunk):
            data = client.sock.recv(1024 * 1024)
            assert data
            received += len(data)
        wait_for(finished.is_set)
    assert finished.is_set()


# -- the client going away -----------------------------------------------------------------


def disconnect_app() -> tuple[list[Any], list[BaseException], Any]:
    """An app that reads until http.disconnect, then tries to send."""
    messages: list[Any] = []
    errors: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] == "http.disconnect":
                break
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"too late"})
        except OSError as exc:
            errors.append(exc)

    return messages, errors, app


@pytest.mark.parametrize("loop", LOOPS)
def test_disconnect_mid_body_is_delivered_to_receive(loop: str) -> None:
    messages, errors, app = disconnect_app()
    with run_server(app, loop=loop) as server:
        client = server.connect()
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        wait_for(lambda: messages)
        client.close()
        wait_for(lambda: messages[-1]["type"] == "http.disconnect")
        wait_for(lambda: errors)
    assert messages[0] == {"type": "http.request", "body": b"0123456789", "more_body": True}
    assert isinstance(errors[0], ClientDisconnected)


@pytest.mark.parametrize("loop", LOOPS)
def test_disconnect_while_the_app_waits_after_the_body(loop: str) -> None:
    messages, _, app = disconnect_app()
    with run_server(app, loop=loop) as server:
        client = server.connect()
        client.send(request("POST", body=b"whole"))
        wait_for(lambda: messages)
        time.sleep(0.05)
        assert len(messages) == 1  # receive() waits: nothing more to say yet
        client.close()
        wait_for(lambda: len(messages) == 2)
    assert messages == [
        {"type": "http.request", "body": b"whole", "more_body": False},
        {"type": "http.disconnect"},
    ]


@pytest.mark.parametrize(
    "partial",
    [
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
        b"Content-Length: 100\r\n\r\nabc",
    ],
    ids=["chunk_cut", "last_chunk_unterminated", "content_length_underrun"],
)
def test_truncated_body_then_eof_gives_disconnect_never_a_short_complete_body(
    partial: bytes,
) -> None:
    messages, _, app = disconnect_app()
    with run_server(app) as server:
        client = server.connect()
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\n" + partial)
        client.sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: messages and messages[-1]["type"] == "http.disconnect")
        assert client.is_closed()
        client.close()
    assert all(m.get("more_body", True) for m in messages)


def test_concurrent_receive_calls_all_learn_of_the_disconnect() -> None:
    body: list[Any] = []
    results: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body.append(await receive())
        waiting = [asyncio.ensure_future(receive()) for _ in range(3)]
        waiting[0].cancel()  # one waiter giving up leaves the others waiting
        results.extend(await asyncio.gather(*waiting[1:]))

    with run_server(app) as server:
        client = server.connect()
        client.send(request("POST", body=b"x"))
        wait_for(lambda: body)
        client.close()
        wait_for(lambda: len(results) == 2)
    assert results == [{"type": "http.disconnect"}] * 2


def test_send_after_the_client_left_raises_client_disconnected() -> None:
    errors: list[BaseException] = []
    started = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        started.set()
        try:
            for _ in range(500):
                await asyncio.sleep(0.01)
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
        except OSError as exc:
            errors.append(exc)

    with run_server(app) as server:
        client = server.connect()
        client.send(request())
        started.wait(5)
        client.close()
        wait_for(lambda: errors)
    assert isinstance(errors[0], ClientDisconnected)


def test_receive_after_the_response_says_disconnect() -> None:
    messages: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        messages.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        messages.append(await receive())

    with run_server(app) as server, server.connect() as client:
        client.send(request())
        assert client.read_response().body == b"done"
        wait_for(lambda: len(messages) == 2)
    assert messages[1] == {"type": "http.disconnect"}


# -- limits --------------------------------------------------------------------------------


def test_limit_concurrency_answers_503_beyond_the_limit() -> None:
    release = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/hold":
            while not release.is_set():
                await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with captured("hasten.error"), run_server(app, limit_concurrency=1) as server:
        state = server.server.state
        assert state is not None
        with server.connect() as first:
            first.send(request(path="/hold"))
            wait_for(lambda: state.tasks)
            second = server.connect()
            started = time.monotonic()
            second.send(request())
            response = second.read_response()
            assert response.status == 503
            assert time.monotonic() - started < 1
            assert second.is_closed()
            second.close()
            release.set()
            assert first.read_response().status == 200
        wait_for(lambda: not state.connections)
        with server.connect() as third:
            third.send(request())
            assert third.read_response().status == 200


def test_idle_keep_alive_connection_is_closed_after_the_timeout() -> None:
    with run_server(hello, timeout_keep_alive=0.3) as server, server.connect() as client:
        client.send(request())
        assert client.read_response().status == 200
        idle_from = time.monotonic()
        assert client.is_closed(timeout=5)
        assert time.monotonic() - idle_from >= 0.25


def test_busy_connection_is_not_closed_by_the_keep_alive_timeout() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(0.8)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slow"})

    with run_server(slow, timeout_keep_alive=0.2) as server, server.connect() as client:
        client.send(request())
        assert client.read_response().body == b"slow"


# -- access log ----------------------------------------------------------------------------


def test_access_log_has_one_line_per_response() -> None:
    with (
        captured("hasten.access", logging.INFO) as log,
        run_server(echo_path) as server,
        server.connect() as client,
    ):
        client.send(request(path="/a?x=1") + request("POST", path="/b", body=b"q"))
        client.read_response()
        client.read_response()
        local = client.sock.getsockname()
        wait_for(lambda: len(log.records) == 2)
    first, second = log.messages()
    assert first.startswith(f'{local[0]}:{local[1]} - "GET /a?x=1 HTTP/1.1" 200 ')
    assert first.endswith("ms")
    assert '"POST /b HTTP/1.1" 200 ' in second


def test_access_log_records_error_statuses() -> None:
    async def fail(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise ValueError("boom")

    with (
        captured("hasten.access", logging.INFO) as log,
        captured("hasten.error"),
        run_server(fail) as server,
        server.connect() as client,
    ):
        client.send(request(path="/boom"))
        assert client.read_response().status == 500
        wait_for(lambda: log.records)
    assert '"GET /boom HTTP/1.1" 500 ' in log.messages()[0]


def test_access_log_escapes_backslashes_and_control_characters() -> None:
    with (
        captured("hasten.access", logging.INFO) as log,
        run_server(echo_path) as server,
        server.connect() as client,
    ):
        client.send(b"GET /a\\b?q=%1b HTTP/1.1\r\nHost: t\r\n\r\n")
        client.read_response()
        wait_for(lambda: log.records)
    message = log.messages()[0]
    assert '"GET /a\\\\b?q=%1b HTTP/1.1"' in message
    assert "\n" not in message and "\x1b" not in message


def test_no_access_log_when_disabled() -> None:
    with (
        captured("hasten.access", logging.INFO) as log,
        run_server(hello, access_log=False) as server,
        server.connect() as client,
    ):
        client.send(request())
        client.read_response()
    assert log.records == []
