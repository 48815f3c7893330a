"""An app that says what an earlier request left in its context: a fresh one holds nothing."""

from __future__ import annotations

import contextvars
from typing import Any

LEFT_BEHIND: contextvars.ContextVar[str] = contextvars.ContextVar("left_behind", default="")


async def context_reporter(scope: Any, receive: Any, send: Any) -> None:
    """Answers (or, as a WebSocket, sends one message) with the LEFT_BEHIND it found, then
    sets it to its own path for any later request to find."""
    if scope["type"] not in ("http", "websocket"):
        return
    found = LEFT_BEHIND.get() or "nothing"
    LEFT_BEHIND.set(scope["path"])
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": found})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    while (await receive()).get("more_body"):
        pass
    body = found.encode()
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
