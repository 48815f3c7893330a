"""Answers with the GREETING environment variable, as it was when the app was imported."""

import os

GREETING = os.environ.get("GREETING", "unset").encode()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(GREETING)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": GREETING})
