"""The app behind the load and fault tests (tests/load/).

``/stream`` streams 50 MB in 64 KiB chunks; ``/tasks`` answers with the number of asyncio
tasks alive in the server's loop, ``/body`` reads the whole request body first; anything
else answers ``ok`` at once.
"""

import asyncio
from typing import Any

STREAM_CHUNK = b"x" * 65536
STREAM_CHUNKS = 50 * 1024 * 1024 // len(STREAM_CHUNK)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(STREAM_CHUNKS):
            await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/body":
        while (await receive()).get("more_body", False):
            pass
    body = str(len(asyncio.all_tasks())).encode() if path == "/tasks" else b"ok"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
