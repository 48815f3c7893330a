"""Files as the response body (asgiref's ``http.response.pathsend`` and
``http.response.zerocopysend``), the same over every protocol (``carrier``): where the
messages may come, what they are checked for, and the bytes the client gets."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import pytest

from tests.contract.carriers import Carrier
from tests.contract.test_http import BODY, START, Outcome, Send, assert_refused
from tests.files_support import CONTENT, content_file

PATHSEND = "http.response.pathsend"
ZEROCOPYSEND = "http.response.zerocopysend"


@pytest.fixture
def file(tmp_path: Path) -> Path:
    return content_file(tmp_path)


def length(size: int) -> dict[str, Any]:
    return {**START, "headers": [(b"content-length", b"%d" % size)]}


def pathsend(path: Path | str) -> dict[str, Any]:
    return {"type": PATHSEND, "path": str(path)}


def served(carrier: Carrier, app: Any, method: str = "GET") -> Any:
    with carrier.serve(app):
        return carrier.request(method)


def zerocopy_app(*steps: dict[str, Any], file: Path, start: dict[str, Any] = START) -> Any:
    """Sends ``start``, then each step: a zerocopysend of ``file`` opened once (the step's
    keys beside ``file``), or a body message when the step has a ``type``."""

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send(start)
        with file.open("rb") as handle:
            for step in steps:
                message = step if "type" in step else {"type": ZEROCOPYSEND, "file": handle, **step}
                await send(message)

    return app


# -- the scope -------------------------------------------------------------------------------


def test_every_http_scope_offers_both_extensions(carrier: Carrier) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] == "http":
            seen.append(scope["extensions"])
            await send(START)
            await send(BODY)

    served(carrier, app)
    assert seen[0][PATHSEND] == {} and seen[0][ZEROCOPYSEND] == {}


# -- pathsend ---------------------------------------------------------------------------------


def test_pathsend_sends_the_whole_file(carrier: Carrier, file: Path) -> None:
    reply = served(carrier, messages_app(length(len(CONTENT)), pathsend(file)))
    assert (reply.status, reply.body, reply.complete) == (200, CONTENT, True)


def test_pathsend_without_a_content_length_is_framed_by_the_server(
    carrier: Carrier, file: Path
) -> None:
    reply = served(carrier, messages_app(START, pathsend(file)))
    assert (reply.status, reply.body, reply.complete) == (200, CONTENT, True)


def test_pathsend_of_an_empty_file(carrier: Carrier, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.touch()
    reply = served(carrier, messages_app(START, pathsend(empty)))
    assert (reply.status, reply.body, reply.complete) == (200, b"", True)


def test_pathsend_to_a_head_request_sends_no_body(carrier: Carrier, file: Path) -> None:
    reply = served(carrier, messages_app(length(len(CONTENT)), pathsend(file)), "HEAD")
    assert (reply.status, reply.body) == (200, b"")
    assert reply.header("content-length") == str(len(CONTENT))


def test_pathsend_before_start_is_refused(carrier: Carrier, file: Path) -> None:
    assert "http.response.start" in assert_refused(carrier, Outcome(), pathsend(file))


def test_pathsend_after_a_body_message_is_refused(carrier: Carrier, file: Path) -> None:
    outcome = Outcome()

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send(START)
        await send({**BODY, "more_body": True})
        try:
            await send(pathsend(file))
        except RuntimeError as exc:
            outcome.errors.append(exc)
            raise
        finally:
            outcome.done.set()

    reply = served(carrier, app)
    outcome.wait()
    assert "cannot follow" in str(outcome.errors[0])
    assert not reply.complete


def test_pathsend_after_the_response_is_refused(carrier: Carrier, file: Path) -> None:
    outcome = Outcome()
    with carrier.serve(_recording(outcome, START, BODY, pathsend(file))):
        reply = carrier.request()
    outcome.wait()
    assert "after the response" in str(outcome.errors[0])
    assert (reply.status, reply.body, reply.complete) == (200, b"ok", True)


def test_pathsend_of_a_relative_path_sends_the_file_in_the_working_directory(
    carrier: Carrier, file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(file.parent)
    reply = served(carrier, messages_app(length(len(CONTENT)), pathsend(file.name)))
    assert (reply.status, reply.body, reply.complete) == (200, CONTENT, True)


@pytest.mark.parametrize("path", [None, b"/etc/hostname", 7])
def test_pathsend_of_a_path_that_is_not_a_str_is_refused(carrier: Carrier, path: Any) -> None:
    error = assert_refused(carrier, Outcome(), START, {"type": PATHSEND, "path": path})
    assert "str path" in error


def test_pathsend_of_a_missing_file_gets_a_500(carrier: Carrier, tmp_path: Path) -> None:
    outcome = Outcome()
    with carrier.serve(_recording(outcome, START, pathsend(tmp_path / "missing"))):
        reply = carrier.request()
    outcome.wait()
    assert isinstance(outcome.errors[0], FileNotFoundError)
    assert (reply.status, reply.complete) == (500, True)


def test_pathsend_of_a_directory_gets_a_500(carrier: Carrier, tmp_path: Path) -> None:
    assert "regular file" in assert_refused(carrier, Outcome(), START, pathsend(tmp_path))


def test_pathsend_of_a_missing_file_after_the_head_left_aborts_the_response(
    carrier: Carrier, tmp_path: Path
) -> None:
    """HTTP/1.1 sends the head at the end of the loop turn of the start (HTTP/2 with the
    first DATA): once part of the response is out, the app's error can only cut it short."""

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] == "http":
            await send(START)
            await asyncio.sleep(0)  # the turn ends
            await send(pathsend(tmp_path / "missing"))

    reply = served(carrier, app)
    if carrier.name == "http1":
        assert reply.status == 200
        assert not reply.complete
    else:
        assert (reply.status, reply.complete) == (500, True)


def test_a_bad_file_after_part_of_the_body_aborts_the_response(
    carrier: Carrier, file: Path
) -> None:
    app = zerocopy_app({"count": 10, "more_body": True}, {"file": io.BytesIO(b"x")}, file=file)
    reply = served(carrier, app)
    assert reply.status == 200
    assert not reply.complete


def test_pathsend_longer_or_shorter_than_the_content_length_gets_a_500(
    carrier: Carrier, file: Path
) -> None:
    error = assert_refused(carrier, Outcome(), length(len(CONTENT) - 1), pathsend(file))
    assert "longer" in error
    error = assert_refused(carrier, Outcome(), length(len(CONTENT) + 1), pathsend(file))
    assert "shorter" in error


# -- zerocopysend -----------------------------------------------------------------------------


def test_zerocopysend_sends_a_range_by_offset_and_count(carrier: Carrier, file: Path) -> None:
    reply = served(carrier, zerocopy_app({"offset": 1000, "count": 70000}, file=file))
    assert (reply.status, reply.body, reply.complete) == (200, CONTENT[1000:71000], True)


def test_zerocopysend_without_a_count_sends_to_the_end(carrier: Carrier, file: Path) -> None:
    reply = served(carrier, zerocopy_app({"offset": 255000}, file=file))
    assert (reply.body, reply.complete) == (CONTENT[255000:], True)


def test_zerocopysend_without_an_offset_starts_at_the_file_position_and_moves_it(
    carrier: Carrier, file: Path
) -> None:
    """Like os.sendfile without an offset: a second message goes on where the first ended."""
    reply = served(
        carrier,
        zerocopy_app({"count": 3, "more_body": True}, {"count": 5}, file=file),
    )
    assert (reply.body, reply.complete) == (CONTENT[:8], True)


def test_zerocopysend_with_more_body_then_body_messages(carrier: Carrier, file: Path) -> None:
    steps = (
        {"type": "http.response.body", "body": b"<", "more_body": True},
        {"offset": 0, "count": 100000, "more_body": True},
        {"offset": 100000, "more_body": True},
        {"type": "http.response.body", "body": b">"},
    )
    reply = served(carrier, zerocopy_app(*steps, file=file, start=length(len(CONTENT) + 2)))
    assert (reply.status, reply.body, reply.complete) == (200, b"<" + CONTENT + b">", True)


def test_zerocopysend_of_a_descriptor(carrier: Carrier, file: Path) -> None:
    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        fd = os.open(file, os.O_RDONLY)
        try:
            await send(START)
            await send({"type": ZEROCOPYSEND, "file": fd, "offset": 2, "count": 4})
        finally:
            os.close(fd)

    reply = served(carrier, app)
    assert (reply.body, reply.complete) == (CONTENT[2:6], True)


def test_zerocopysend_past_the_end_of_the_file_gets_a_500(carrier: Carrier, file: Path) -> None:
    outcome = Outcome()
    message = {"offset": len(CONTENT) - 10, "count": 11}
    with carrier.serve(_recording(outcome, START, message, file=file)):
        reply = carrier.request()
    outcome.wait()
    assert "the file has" in str(outcome.errors[0])
    assert (reply.status, reply.complete) == (500, True)


@pytest.mark.parametrize(
    "fields",
    [
        {"file": io.BytesIO(b"x")},
        {"file": None},
        {"file": "/etc/hostname"},
        {"file": -1},
        {"offset": -1},
        {"count": "10"},
        {"count": True},
    ],
    ids=["bytesio", "none", "str", "bad-fd", "negative-offset", "str-count", "bool-count"],
)
def test_zerocopysend_with_bad_fields_is_refused(
    carrier: Carrier, file: Path, fields: dict[str, Any]
) -> None:
    outcome = Outcome()
    with carrier.serve(_recording(outcome, START, fields, file=file)):
        reply = carrier.request()
    outcome.wait()
    assert isinstance(outcome.errors[0], RuntimeError)
    assert "zerocopysend" in str(outcome.errors[0])
    assert (reply.status, reply.complete) == (500, True)


def test_zerocopysend_before_start_is_refused(carrier: Carrier, file: Path) -> None:
    error = assert_refused(carrier, Outcome(), {"type": ZEROCOPYSEND, "file": 0})
    assert "http.response.start" in error


# -- helpers -----------------------------------------------------------------------------------


def messages_app(*messages: dict[str, Any]) -> Any:
    """An app that sends ``messages`` for an http request."""

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] == "http":
            for message in messages:
                await send(message)

    return app


def _recording(outcome: Outcome, *messages: dict[str, Any], file: Path | None = None) -> Any:
    """An app that sends ``messages`` (a message without a type is a zerocopysend of
    ``file``, opened for the request) and records the error send() raises."""

    async def app(scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        handle = None if file is None else file.open("rb")
        try:
            for step in messages:
                await send(
                    step if "type" in step else {"type": ZEROCOPYSEND, "file": handle, **step}
                )
        except Exception as exc:
            outcome.errors.append(exc)
            raise
        finally:
            if handle is not None:
                handle.close()
            outcome.done.set()

    return app
