"""What the server does when the app or the client gets HTTP wrong: every case answers
cleanly (500, 400, or a closed connection), raises a clear RuntimeError into a misbehaving
app, never writes bad bytes, and leaves the server serving."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.harness import RunningServer, request, run_server
from tests.protocols.http1_apps import captured, read_body, wait_for

Send = Callable[[dict[str, Any]], Awaitable[None]]


def assert_still_serving(server: RunningServer) -> None:
    with server.connect() as client:
        client.send(request(path="/fresh"))
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"fresh"


def app_with(behaviour: Callable[[Send], Awaitable[None]]) -> Any:
    """An app that runs ``behaviour(send)`` for "/" and answers "fresh" for "/fresh"."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/fresh":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"fresh"})
            return
        await behaviour(send)

    return app


# -- app exceptions ------------------------------------------------------------------------


def test_error_response_to_head_has_the_fields_of_get_and_no_content() -> None:
    async def fail(send: Send) -> None:
        raise ValueError("boom")

    with captured("hasten.error"), run_server(app_with(fail)) as server:
        with server.connect() as client:  # RFC 9110 §9.3.2
            client.send(request("HEAD"))
            raw = client.read_all()
        head, _, content = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 500 ")
        assert b"content-length: 22" in head.lower()  # the length a GET's body would have
        assert content == b""
        assert_still_serving(server)


def test_exception_before_response_gives_500_and_one_logged_traceback() -> None:
    async def fail(send: Send) -> None:
        raise ValueError("boom")

    with captured("hasten.error") as log, run_server(app_with(fail)) as server:
        with server.connect() as client:
            client.send(request())
            response = client.read_response()
            assert response.status == 500
            assert response.header("connection") == "close"
            assert b"boom" not in response.body
            assert client.is_closed()
        assert_still_serving(server)
    tracebacks = [r for r in log.records if r.exc_info]
    assert len(tracebacks) == 1
    assert isinstance(tracebacks[0].exc_info[1], ValueError)  # type: ignore[index]


def test_exception_after_start_before_body_gives_500() -> None:
    async def fail(send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ValueError("boom")

    with captured("hasten.error") as log, run_server(app_with(fail)) as server:
        with server.connect() as client:
            client.send(request())
            # The head was held back, so a clean 500 can still replace it.
            assert client.read_response().status == 500
            assert client.is_closed()
        assert_still_serving(server)
    assert len([r for r in log.records if r.exc_info]) == 1


def test_exception_after_body_started_closes_the_connection() -> None:
    async def fail(send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom")

    with captured("hasten.error") as log, run_server(app_with(fail)) as server:
        with server.connect() as client:
            client.send(request())
            data = client.read_all()
            assert data.startswith(b"HTTP/1.1 200 ")
            assert b"partial" in data
            # A chunked body cut short: the terminating chunk was never sent.
            assert not data.endswith(b"0\r\n\r\n")
        assert_still_serving(server)
    assert len([r for r in log.records if r.exc_info]) == 1


def test_app_returning_without_response_gives_500() -> None:
    async def nothing(send: Send) -> None:
        return

    with captured("hasten.error") as log, run_server(app_with(nothing)) as server:
        with server.connect() as client:
            client.send(request())
            assert client.read_response().status == 500
            assert client.is_closed()
        assert_still_serving(server)
    assert any("without starting a response" in m for m in log.messages())


def test_app_returning_after_start_without_finishing_closes_the_connection() -> None:
    async def unfinished(send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    with run_server(app_with(unfinished)) as server:
        with server.connect() as client:
            client.send(request())
            data = client.read_all()
            assert data.startswith(b"HTTP/1.1 200 ")
            assert not data.endswith(b"0\r\n\r\n")
        assert_still_serving(server)


def test_content_shorter_than_content_length_closes_the_connection() -> None:
    async def short(send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
        )
        await send({"type": "http.response.body", "body": b"12345"})

    with run_server(app_with(short)) as server:
        with server.connect() as client:
            client.send(request() + request(path="/fresh"))
            data = client.read_all()
            assert data.startswith(b"HTTP/1.1 200 ")
            assert data.endswith(b"\r\n\r\n12345")
        assert_still_serving(server)


# -- invalid messages from the app ---------------------------------------------------------

START = {"type": "http.response.start", "status": 200, "headers": []}
BODY = {"type": "http.response.body", "body": b"x"}

INVALID_SEQUENCES: dict[str, tuple[list[dict[str, Any]], str]] = {
    "body_before_start": ([BODY], "http.response.start"),
    "start_twice": ([START, START], "http.response.body"),
    "wrong_type_name": ([{"type": "http.response.begin", "status": 200}], "http.response.start"),
    "wrong_body_type_name": ([START, {"type": "http.body", "body": b""}], "http.response.body"),
    "message_after_response": ([START, BODY, BODY], "after the response"),
    "status_99": ([{**START, "status": 99}], "status"),
    "status_1000": ([{**START, "status": 1000}], "status"),
    "status_string": ([{**START, "status": "200"}], "status"),
    "status_float": ([{**START, "status": 200.0}], "status"),
    "status_bool": ([{**START, "status": True}], "status"),
    "status_informational": ([{**START, "status": 103}], "status"),
    "status_missing": ([{"type": "http.response.start", "headers": []}], "status"),
    "str_header_name": ([{**START, "headers": [("x-a", b"1")]}], "bytes"),
    "str_header_value": ([{**START, "headers": [(b"x-a", "1")]}], "bytes"),
    "header_value_cr": ([{**START, "headers": [(b"x-a", b"1\rX: 2")]}], "header value"),
    "header_value_lf": ([{**START, "headers": [(b"x-a", b"1\nX: 2")]}], "header value"),
    "header_value_nul": ([{**START, "headers": [(b"x-a", b"1\x00")]}], "header value"),
    "header_name_crlf": ([{**START, "headers": [(b"x-a\r\nx-b", b"1")]}], "header name"),
    "header_name_space": ([{**START, "headers": [(b"x a", b"1")]}], "header name"),
    "header_name_empty": ([{**START, "headers": [(b"", b"1")]}], "header name"),
    "header_not_a_pair": ([{**START, "headers": [(b"x-a",)]}], "header"),
    "body_not_bytes": ([START, {"type": "http.response.body", "body": "BADBODY"}], "bytes"),
    "bad_content_length": (
        [{**START, "headers": [(b"content-length", b"12a")]}],
        "Content-Length",
    ),
    "missing_type": ([{"status": 200, "headers": []}], "http.response.start"),
    "headers_not_iterable": ([{**START, "headers": 5}], "iterable"),
    "two_content_lengths": (
        [{**START, "headers": [(b"content-length", b"1"), (b"content-length", b"2")]}],
        "more than one",
    ),
    "body_longer_than_content_length": (
        [{**START, "headers": [(b"content-length", b"2")]}, {**BODY, "body": b"abc"}],
        "longer",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_SEQUENCES))
def test_invalid_app_message_raises_runtime_error_into_the_app(case: str) -> None:
    messages, expected = INVALID_SEQUENCES[case]
    raised: list[BaseException] = []

    async def misbehave(send: Send) -> None:
        try:
            for message in messages:
                await send(message)
        except RuntimeError as exc:
            raised.append(exc)
            raise

    with captured("hasten.error"), run_server(app_with(misbehave)) as server:
        with server.connect() as client:
            client.send(request(headers={"Connection": "close"}))
            data = client.read_all()
        assert_still_serving(server)
    assert len(raised) == 1, raised
    assert expected.lower() in str(raised[0]).lower()
    for forbidden in (b"X: 2", b"x-b", b"\x00", b"BADBODY", b"abc"):
        assert forbidden not in data
    # A clean 500, or (once a response was complete) nothing more than it.
    if case == "message_after_response":
        assert data.endswith(b"\r\n\r\nx")
    else:
        assert data.startswith(b"HTTP/1.1 500 ")


def test_exception_after_a_complete_response_keeps_the_connection() -> None:
    async def fail_late(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            await asyncio.sleep(0.05)
        await send(START)
        await send({"type": "http.response.body", "body": scope["path"].encode()})
        if scope["path"] == "/first":
            raise ValueError("after the response")

    with (
        captured("hasten.error") as log,
        run_server(fail_late) as server,
        server.connect() as client,
    ):
        client.send(request(path="/first") + request(path="/slow"))
        assert client.read_response().body == b"/first"
        assert client.read_response().body == b"/slow"
        assert not client.is_closed(timeout=0.1)
    assert len([r for r in log.records if r.exc_info]) == 1


def test_cancelled_error_after_a_complete_response_keeps_the_connection() -> None:
    async def cancel_late(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(START)
        await send({"type": "http.response.body", "body": scope["path"].encode()})
        if scope["path"] == "/first":
            raise asyncio.CancelledError

    with run_server(cancel_late) as server, server.connect() as client:
        client.send(request(path="/first"))
        assert client.read_response().body == b"/first"
        client.send(request(path="/second"))
        assert client.read_response().body == b"/second"


def test_app_can_start_again_after_an_invalid_start() -> None:
    async def retry(send: Send) -> None:
        bad = [(b"content-length", b"100"), (b"x-bad", b"a\nb")]
        with pytest.raises(RuntimeError):
            await send({**START, "headers": bad})
        await send({**START, "status": 201})
        await send({"type": "http.response.body", "body": b"again"})

    with run_server(app_with(retry)) as server, server.connect() as client:
        client.send(request())
        response = client.read_response()
        assert response.status == 201
        assert response.body == b"again"
        assert response.header("content-length") == "5"


def test_message_after_response_does_not_reach_the_wire() -> None:
    async def twice(send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"one"})
        with pytest.raises(RuntimeError):
            await send({"type": "http.response.body", "body": b"two"})

    with run_server(app_with(twice)) as server, server.connect() as client:
        client.send(request())
        assert client.read_response().body == b"one"
        assert client.is_closed(timeout=0.3) is False
        assert client.buffer == b""


# -- malformed requests --------------------------------------------------------------------

MALFORMED_REQUESTS = {
    "garbage": b"\x00\x01\x02 nonsense\r\n\r\n",
    "bad_method": b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n",
    "bad_version": b"GET / HTTP/x.y\r\nHost: t\r\n\r\n",
    "space_in_header_name": b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: 1\r\n\r\n",
    "bad_content_length": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
    "two_content_lengths": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    ),
    "non_ascii_target": b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED_REQUESTS))
def test_malformed_request_gets_400_with_connection_close(case: str) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/fresh":
            seen.append(scope)
            await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fresh"})

    with run_server(app) as server:
        with server.connect() as client:
            client.send(MALFORMED_REQUESTS[case])
            response = client.read_response()
            assert response.status == 400
            assert response.header("connection") == "close"
            assert client.is_closed()
        assert_still_serving(server)
    assert seen == []


def test_malformed_body_while_the_app_reads_gives_400_and_disconnect() -> None:
    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/fresh":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"fresh"})
            return
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect":
                return

    with run_server(app) as server:
        with server.connect() as client:
            client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            client.send(b"3\r\nabc\r\n")
            wait_for(lambda: received)
            client.send(b"zz\r\nabc\r\n")
            response = client.read_response()
            assert response.status == 400
            assert response.header("connection") == "close"
            assert client.is_closed()
        assert_still_serving(server)
    wait_for(lambda: received[-1]["type"] == "http.disconnect")
    assert received[0] == {"type": "http.request", "body": b"abc", "more_body": True}


def test_malformed_body_of_a_queued_request_gets_400_after_the_first_response() -> None:
    with run_server(app_with(slow_answer)) as server:
        with server.connect() as client:
            client.send(
                request()
                + b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            )
            assert client.read_response().body == b"slow"
            assert client.read_response().status == 400
            assert client.is_closed()
        assert_still_serving(server)


async def slow_answer(send: Send) -> None:
    await asyncio.sleep(0.05)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"slow"})


def test_malformed_request_after_a_good_one_is_answered_after_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(0.05)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"good"})

    with run_server(app) as server, server.connect() as client:
        client.send(request() + b"BAD REQUEST\r\n\r\n")
        assert client.read_response().body == b"good"
        assert client.read_response().status == 400
        assert client.is_closed()


def test_http2_version_in_request_line_gets_505() -> None:
    with run_server(app_with(lambda send: asyncio.sleep(0))) as server, server.connect() as c:
        c.send(b"GET / HTTP/2.0\r\nHost: t\r\n\r\n")
        response = c.read_response()
        assert response.status in (400, 505)
        assert c.is_closed()


def test_server_survives_many_failures_in_a_row() -> None:
    calls: list[int] = []

    async def fail(send: Send) -> None:
        calls.append(1)
        raise RuntimeError("again")

    with captured("hasten.error"), run_server(app_with(fail)) as server:
        for _ in range(5):
            with server.connect() as client:
                client.send(request())
                assert client.read_response().status == 500
        assert_still_serving(server)
    wait_for(lambda: len(calls) == 5)
