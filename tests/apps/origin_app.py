"""An app that answers with whom the server says the client is: client, server, scheme,
Host, HTTP version and the tls extension, as JSON (a WebSocket gets it as one message)."""

from __future__ import annotations

import json
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    origin = {
        "client": scope["client"],
        "server": scope["server"],
        "scheme": scope["scheme"],
        "host": dict(scope["headers"]).get(b"host", b"").decode("latin-1"),
        "http_version": scope.get("http_version"),
        "tls": scope["extensions"].get("tls"),
    }
    body = json.dumps(origin)
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body})
        await send({"type": "websocket.close"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body.encode()})
