"""Answers every request with the threshold of the youngest garbage-collector generation."""

import gc

from proc_common import answer


async def app(scope, receive, send):
    if scope["type"] == "http":
        await answer(send, str(gc.get_threshold()[0]).encode())
