"""A recording echo app: every request that reaches it is written down, so a test can prove
that no smuggled request got through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes


@dataclass
class SeenRequest:
    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    body_complete: bool = False


@dataclass
class RecordingApp:
    """Reads the whole body, records the request, answers 200 with ``METHOD path``.

    The path ``/header-from-path`` copies the query string, percent-decoded, into a
    response header (the pattern behind response-splitting bugs); ``/answer-early`` answers
    before reading any of the body.
    """

    requests: list[SeenRequest] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen = SeenRequest(
            scope["method"],
            scope["path"],
            scope["raw_path"],
            scope["query_string"],
            list(scope["headers"]),
        )
        self.requests.append(seen)
        if scope["path"] == "/answer-early":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"early"})
            return
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            seen.body += message.get("body", b"")
            if not message.get("more_body", False):
                seen.body_complete = True
                break
        if scope["path"] == "/header-from-path":
            value = unquote_to_bytes(scope["query_string"])
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"x-echo", value)]}
            )
            await send({"type": "http.response.body", "body": b"echoed"})
            return
        body = f"{scope['method']} {scope['path']}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]
