"""Plain ASGI apps served by every server in the benchmark (no framework in the way).

Each callable answers the lifespan protocol too, so that every server runs it the same way.
"""

from __future__ import annotations

import contextlib
from typing import Any

Scope = dict[str, Any]
Receive = Any
Send = Any

HELLO_BODY = b"Hello, world!"  # 13 bytes
_TEXT_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
_HELLO_END = {"type": "http.response.body", "body": HELLO_BODY}

STREAM_CHUNK = b"x" * (64 * 1024)
STREAM_CHUNKS = 16  # 16 x 64 KiB = 1 MiB
_STREAM_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(STREAM_CHUNK) * STREAM_CHUNKS).encode()),
    ],
}

_BIG_END = {"type": "http.response.body", "body": STREAM_CHUNK * STREAM_CHUNKS}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """13-byte text response."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send(_TEXT_START)
    await send(_HELLO_END)
    return None


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole request body and sends it back."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    chunks = []
    more_body = True
    while more_body:
        message = await receive()
        chunks.append(message.get("body", b""))
        more_body = message.get("more_body", False)
    body = b"".join(chunks)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return None


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """1 MiB response sent as 16 body messages of 64 KiB."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send(_STREAM_START)
    for _ in range(STREAM_CHUNKS - 1):
        await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": STREAM_CHUNK})
    return None


async def big(scope: Scope, receive: Receive, send: Send) -> None:
    """1 MiB response sent as one body message."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send(_STREAM_START)
    await send(_BIG_END)
    return None


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """WebSocket echo; plain HTTP requests get the hello answer (used by the probes)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] == "http":
        return await hello(scope, receive, send)
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            return None


# Every open connection of ws_broadcast, in the order they were accepted.
_listeners: dict[int, Send] = {}


async def ws_broadcast(scope: Scope, receive: Receive, send: Send) -> None:
    """WebSocket broadcast: every message a connection sends goes to all open connections,
    in the order they connected."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] == "http":
        return await hello(scope, receive, send)
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.connect":
                await send({"type": "websocket.accept"})
                _listeners[id(send)] = send
            elif kind == "websocket.receive":
                if message.get("text") is not None:
                    out = {"type": "websocket.send", "text": message["text"]}
                else:
                    out = {"type": "websocket.send", "bytes": message["bytes"]}
                for listener in tuple(_listeners.values()):
                    with contextlib.suppress(Exception):  # a listener closing meanwhile
                        await listener(out)
            else:
                return None
    finally:
        _listeners.pop(id(send), None)
