"""An app for graceful-shutdown tests; it prints what happens, in order.

``/slow`` answers once the file named by $SLOW_APP_RELEASE_FILE exists, ``/never`` never
answers, anything else answers at once.
"""

import asyncio
import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        print("lifespan shutdown", flush=True)
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/slow":
        print("request started", flush=True)
        while not os.path.exists(os.environ["SLOW_APP_RELEASE_FILE"]):
            await asyncio.sleep(0.01)
        print("request finished", flush=True)
    elif path == "/never":
        print("request started", flush=True)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            print("request cancelled", flush=True)
            raise
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": path.encode()})
