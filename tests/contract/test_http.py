"""The ASGI http contract, the same over every protocol (``carrier``): the order and the
checks of the response messages, what the client gets when the app breaks them or fails,
and how ``receive()`` delivers the body and the disconnect."""

from __future__ import annotations

import ast
import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.contract.carriers import Carrier
from tests.protocols.http1_apps import wait_for

START: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": []}
BODY: dict[str, Any] = {"type": "http.response.body", "body": b"ok"}
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Outcome:
    """What happened inside the app, for the test thread to read once it has happened."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.received: list[dict[str, Any]] = []
        self.done = threading.Event()

    def wait(self) -> None:
        assert self.done.wait(5), "the app did not get there in time"


def sending(*messages: dict[str, Any], outcome: Outcome) -> Any:
    """An app that sends ``messages`` and records the error send() raises, if any; the
    error is raised on from the app."""

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            for message in messages:
                await send(message)
        except RuntimeError as exc:
            outcome.errors.append(exc)
            raise
        finally:
            outcome.done.set()

    return app


def assert_refused(carrier: Carrier, outcome: Outcome, *messages: dict[str, Any]) -> str:
    """The app's messages are refused with a RuntimeError, and the client gets a 500 instead
    of anything the app sent; the error's text is returned."""
    with carrier.serve(sending(*messages, outcome=outcome)):
        reply = carrier.request()
    outcome.wait()
    assert len(outcome.errors) == 1, outcome.errors
    assert reply.status == 500
    assert reply.complete
    return str(outcome.errors[0])


# -- the scope -----------------------------------------------------------------------------------


def test_scope_says_the_same_of_a_request_over_every_protocol(carrier: Carrier) -> None:
    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        fields = ("type", "asgi", "method", "path", "raw_path", "query_string", "root_path")
        summary = {key: scope[key] for key in fields}
        summary["scheme"] = scope["scheme"]
        summary["client"] = scope["client"][0]
        summary["server"] = scope["server"][0]
        summary["http_version"] = scope["http_version"]
        summary["user_agent"] = dict(scope["headers"]).get(b"user-agent")
        await send(START)
        await send({**BODY, "body": repr(summary).encode()})

    with carrier.serve(app, root_path="/root"):
        exchange = carrier.open("GET", "/caf%C3%A9?x=1", [("user-agent", "contract")])
        reply = exchange.reply()
    summary = ast.literal_eval(reply.body.decode())
    assert summary == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "method": "GET",
        "path": "/root/café",
        "raw_path": b"/root/caf%C3%A9",
        "query_string": b"x=1",
        "root_path": "/root",
        "scheme": "https" if carrier.name == "h2-tls" else "http",
        "client": "127.0.0.1",
        "server": "127.0.0.1",
        "http_version": "1.1" if carrier.name == "http1" else "2",
        "user_agent": b"contract",
    }


# -- the order of the response messages ------------------------------------------------------


def test_body_before_start_is_refused(carrier: Carrier) -> None:
    assert "http.response.start" in assert_refused(carrier, Outcome(), BODY)


def test_start_twice_is_refused(carrier: Carrier) -> None:
    assert "http.response.body" in assert_refused(carrier, Outcome(), START, START)


def test_unknown_message_type_is_refused(carrier: Carrier) -> None:
    error = assert_refused(carrier, Outcome(), START, {"type": "http.response.bodyy"})
    assert "http.response.body" in error


def test_message_after_the_response_is_refused_and_the_response_stands(
    carrier: Carrier,
) -> None:
    outcome = Outcome()
    with carrier.serve(sending(START, BODY, BODY, outcome=outcome)):
        reply = carrier.request()
    outcome.wait()
    assert "after the response" in str(outcome.errors[0])
    assert (reply.status, reply.body, reply.complete) == (200, b"ok", True)


def test_trailers_and_early_hints_are_sent_where_the_scope_offers_them(
    carrier: Carrier,
) -> None:
    outcome = Outcome()

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        offered = "http.response.trailers" in scope["extensions"]
        try:
            await send({"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]})
            await send({**START, "trailers": True})
            await send({**BODY, "more_body": False})
            await send({"type": "http.response.trailers", "headers": [(b"x-t", b"1")]})
        except RuntimeError as exc:
            outcome.errors.append(exc)
            if offered:
                raise
            await send(START)
            await send(BODY)
        finally:
            outcome.received.append({"offered": offered})
            outcome.done.set()

    with carrier.serve(app):
        reply = carrier.request()
    outcome.wait()
    assert (reply.status, reply.body, reply.complete) == (200, b"ok", True)
    if outcome.received[0]["offered"]:
        assert outcome.errors == []
    else:
        assert "http.response.start" in str(outcome.errors[0])


def test_body_after_the_last_body_of_a_response_with_trailers_is_refused(
    carrier: Carrier,
) -> None:
    outcome = Outcome()

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        if "http.response.trailers" not in scope["extensions"]:
            outcome.done.set()
            await send(START)
            await send(BODY)
            return
        await send({**START, "trailers": True})
        await send(BODY)
        try:
            await send(BODY)
        except RuntimeError as exc:
            outcome.errors.append(exc)
        await send({"type": "http.response.trailers", "headers": [(b"x-t", b"1")]})
        outcome.done.set()

    with carrier.serve(app):
        reply = carrier.request()
    outcome.wait()
    assert (reply.status, reply.body, reply.complete) == (200, b"ok", True)
    if carrier.name != "http1":
        assert "http.response.trailers" in str(outcome.errors[0])


# -- the checks of http.response.start --------------------------------------------------------


@pytest.mark.parametrize("status", [99, 103, 600, "200", 200.0, True, None])
def test_bad_status_is_refused(carrier: Carrier, status: object) -> None:
    assert "status" in assert_refused(carrier, Outcome(), {**START, "status": status})


@pytest.mark.parametrize("name", [b"x a", b"x\r\nx-b", b"", "x-a"])
def test_bad_header_name_is_refused(carrier: Carrier, name: object) -> None:
    start = {**START, "headers": [(name, b"1")]}
    assert "header" in assert_refused(carrier, Outcome(), start, BODY)


@pytest.mark.parametrize("value", [b"1\r\nx-b: 2", b"1\n", b"1\x00", "1"])
def test_bad_header_value_is_refused(carrier: Carrier, value: object) -> None:
    start = {**START, "headers": [(b"x-a", value)]}
    assert "header" in assert_refused(carrier, Outcome(), start, BODY)


def test_body_that_is_not_bytes_is_refused(carrier: Carrier) -> None:
    error = assert_refused(carrier, Outcome(), START, {**BODY, "body": "text"})
    assert "bytes" in error


def test_a_refused_start_leaves_nothing_behind(carrier: Carrier) -> None:
    """An app may catch the error of a refused start and start again: nothing of the
    refused one (its Content-Length) applies to the new one. HTTP/2 kept the length."""
    outcome = Outcome()

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await send({**START, "headers": [(b"content-length", b"5"), (b"x a", b"1")]})
        except RuntimeError as exc:
            outcome.errors.append(exc)
        await send(START)
        await send({**BODY, "body": b"hello world"})
        outcome.done.set()

    with carrier.serve(app):
        reply = carrier.request()
    outcome.wait()
    assert len(outcome.errors) == 1
    assert (reply.status, reply.body, reply.complete) == (200, b"hello world", True)


# -- Content-Length against the body ----------------------------------------------------------


def test_body_longer_than_its_content_length_is_refused(carrier: Carrier) -> None:
    start = {**START, "headers": [(b"content-length", b"2")]}
    error = assert_refused(carrier, Outcome(), start, {**BODY, "body": b"abc"})
    assert "longer" in error


def test_body_shorter_than_its_content_length_is_never_a_complete_response(
    carrier: Carrier,
) -> None:
    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] == "http":
            await send({**START, "headers": [(b"content-length", b"10")]})
            await send({**BODY, "body": b"abc", "more_body": True})
            await send({**BODY, "body": b"de"})

    with carrier.serve(app):
        reply = carrier.request()
    assert reply.status == 200
    assert not reply.complete


# -- the app failing ---------------------------------------------------------------------------


class AppAbort(BaseException):
    """Not an Exception: what an app raising a BaseException of its own raises."""


@pytest.mark.parametrize("error", [ValueError, AppAbort])
def test_app_raising_before_the_response_gets_a_500(carrier: Carrier, error: type) -> None:
    """HTTP/2 caught Exception only: an app raising another BaseException left its stream
    unanswered."""

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] == "http":
            raise error("boom")

    with carrier.serve(app):
        reply = carrier.request(timeout=3)
    assert (reply.status, reply.complete) == (500, True)


def stopping(how: str, *messages: dict[str, Any]) -> Any:
    """An app that sends ``messages``, then raises or returns (``how``)."""

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        for message in messages:
            await send(message)
        if how == "raise":
            raise ValueError("boom")

    return app


@pytest.mark.parametrize("how", ["raise", "return"])
def test_app_stopping_after_start_before_the_body_gets_a_500(carrier: Carrier, how: str) -> None:
    """HTTP/1.1 closed the connection without a word when the app returned there."""
    with carrier.serve(stopping(how, START)):
        reply = carrier.request()
    assert (reply.status, reply.complete) == (500, True)


@pytest.mark.parametrize("how", ["raise", "return"])
def test_app_stopping_in_the_middle_of_the_body_leaves_the_response_incomplete(
    carrier: Carrier, how: str
) -> None:
    with carrier.serve(stopping(how, START, {**BODY, "body": b"part", "more_body": True})):
        reply = carrier.request()
    assert reply.status == 200
    assert not reply.complete


def test_app_returning_without_a_response_gets_a_500(carrier: Carrier) -> None:
    with carrier.serve(stopping("return")):
        reply = carrier.request()
    assert (reply.status, reply.complete) == (500, True)


# -- receive() ---------------------------------------------------------------------------------


def test_body_arrives_in_order_and_ends_with_more_body_false(carrier: Carrier) -> None:
    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            body += message["body"]
            if not message["more_body"]:
                break
        await send(START)
        await send({**BODY, "body": body})

    payload = bytes(range(256)) * 512
    with carrier.serve(app):
        reply = carrier.request("POST", body=payload)
    assert (reply.status, reply.body, reply.complete) == (200, payload, True)


def test_disconnect_reaches_an_app_waiting_after_the_body(carrier: Carrier) -> None:
    """The app learns that the client left: its receive() says so, or (HTTP/2, where the
    server stops work the client no longer wants, RFC 9113 §10.5) its task is cancelled."""
    outcome = Outcome()

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        await receive()
        outcome.done.set()
        try:
            outcome.received.append(await receive())
        except asyncio.CancelledError:
            outcome.received.append({"type": "cancelled"})
            raise

    with carrier.serve(app):
        exchange = carrier.open()
        outcome.wait()
        exchange.disconnect()
        wait_for(lambda: outcome.received)
    expected = "http.disconnect" if carrier.name == "http1" else "cancelled"
    assert outcome.received == [{"type": expected}]


def test_every_task_waiting_in_receive_gets_the_disconnect(carrier: Carrier) -> None:
    """Two tasks wait in receive() at once. HTTP/2 kept one waiter: the other never woke."""
    ready = threading.Semaphore(0)
    received: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return

        async def wait_for_message() -> None:
            ready.release()
            received.append(await receive())

        tasks = [asyncio.ensure_future(wait_for_message()) for _ in range(2)]
        await asyncio.wait(tasks)

    with carrier.serve(app):
        exchange = carrier.open("POST", headers=[("content-length", "10")], body_follows=True)
        for _ in range(2):
            assert ready.acquire(timeout=5)
        exchange.disconnect()
        wait_for(lambda: len(received) == 2)
    assert received == [{"type": "http.disconnect"}] * 2
