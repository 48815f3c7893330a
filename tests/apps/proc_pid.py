"""Answers every request with the pid of the worker process that served it."""

import os
import time

from proc_common import answer


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/block":
        print("blocking the event loop", flush=True)  # tests wait for this line
        time.sleep(60)  # a stuck event loop, for the health check
    await answer(send, str(os.getpid()).encode())
