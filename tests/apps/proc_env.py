"""Answers with the GREETING environment variable, as it was when the app was imported."""

import os

from proc_common import answer

GREETING = os.environ.get("GREETING", "unset").encode()


async def app(scope, receive, send):
    if scope["type"] == "http":
        await answer(send, GREETING)
