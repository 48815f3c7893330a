"""One app for the smoke tests of an installed hasten: HTTP answers with what the server
told it (protocol version, scheme, worker pid, lifespan state); WebSockets echo."""

from __future__ import annotations

import json
import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            scope["state"]["started_by"] = os.getpid()
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        body = json.dumps(
            {
                "http_version": scope["http_version"],
                "scheme": scope["scheme"],
                "pid": os.getpid(),
                "started_by": scope.get("state", {}).get("started_by"),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
    else:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send(
                {
                    "type": "websocket.send",
                    "text": message.get("text"),
                    "bytes": message.get("bytes"),
                }
            )
