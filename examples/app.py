"""A plain ASGI app that `make run` serves: hello, JSON, streaming and echo routes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/":
        await respond(send, 200, b"Hello, world!", b"text/plain; charset=utf-8")
    elif path == "/json":
        body = json.dumps({"message": "Hello, world!", "server": "hasten"}).encode()
        await respond(send, 200, body, b"application/json")
    elif path == "/stream":
        await stream(send)
    elif path == "/echo":
        await echo(receive, send)
    else:
        await respond(send, 404, b"Not Found", b"text/plain; charset=utf-8")


async def respond(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def stream(send: Any) -> None:
    """Ten lines, a tenth of a second apart, sent with chunked encoding."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    for number in range(10):
        await send({"type": "http.response.body", "body": b"line %d\n" % number, "more_body": True})
        await asyncio.sleep(0.1)
    await send({"type": "http.response.body", "body": b""})


async def echo(receive: Any, send: Any) -> None:
    """The request body, streamed back as it arrives."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more_body = message.get("more_body", False)
        await send({"type": "http.response.body", "body": message["body"], "more_body": more_body})


async def lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
