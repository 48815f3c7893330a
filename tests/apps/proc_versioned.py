"""Answers every request with VERSION; reload tests copy this file and edit VERSION."""

VERSION = b"v1"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(VERSION)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": VERSION})
