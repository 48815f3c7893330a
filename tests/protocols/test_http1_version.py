"""The request's HTTP version, read from the request line by hasten when it can and from
httptools otherwise: the scope says the version of each request, however it was split."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hasten import Config
from hasten.protocols.http1.connection import H1Connection, request_line_version
from hasten.state import ServerState
from tests.harness import run_client
from tests.protocols.test_http1_turn_end import FakeTransport


@pytest.mark.parametrize(
    ("data", "version"),
    [
        (b"GET /a?b HTTP/1.1\r\nHost: t\r\n\r\n", "1.1"),
        (b"GET /a?b HTTP/1.0\r\n\r\n", "1.0"),
        (b"GET /a?b HTTP/2.0\r\n\r\n", None),
        (b"GET /a?b HTTP/1.1", None),  # the line has not ended
        (b"\r\nGET /a?b HTTP/1.1\r\n\r\n", None),  # an empty line first (RFC 9112 §2.2)
        (b"GET  /a?b HTTP/1.1\r\n\r\n", None),  # two spaces, which llhttp lets through
        (b"ET /a?b HTTP/1.1\r\n\r\n", None),  # the rest of a method split across reads
    ],
)
def test_request_line_version_reads_only_a_line_written_the_usual_way(
    data: bytes, version: str | None
) -> None:
    assert request_line_version(data, b"GET", b"/a?b") == version


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.0\r\n\r\n"], ["1.1", "1.0"]),
        ([b"GE", b"T / HTTP/1.0\r\n\r\n"], ["1.0"]),
        ([b"GET / HTT", b"P/1.0\r\n\r\n"], ["1.0"]),
        ([b"\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n"], ["1.1", "1.0"]),
        # A body line that looks like a request line must not lend its version to the
        # request after it.
        (
            [
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 12\r\n\r\n",
                b"x HTTP/1.0\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
            ],
            ["1.1", "1.1"],
        ),
        ([b"GET / HTTP/1.0\r\n", b"X: HTTP/1.1\r\n\r\n"], ["1.0"]),
        ([b"GET  /  HTTP/1.0\r\n\r\n"], ["1.0"]),
    ],
)
def test_each_request_gets_its_own_version_however_it_is_split(
    chunks: list[bytes], expected: list[str]
) -> None:
    versions: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        versions.append(scope["http_version"])
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def feed() -> None:
        state = ServerState(Config(app=app), app, asyncio.get_running_loop())
        conn = H1Connection(state)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        for chunk in chunks:
            conn.data_received(chunk)
            for _ in range(5):  # the apps of this chunk's requests run
                await asyncio.sleep(0)

    run_client(feed())
    assert versions == expected
