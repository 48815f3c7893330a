"""Fails at import while the file named by $PROC_FRAGILE_MARKER exists; else like proc_pid."""

import asyncio
import os
from pathlib import Path

from proc_common import answer

if Path(os.environ["PROC_FRAGILE_MARKER"]).exists():
    raise RuntimeError("refusing to start: marker file present")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        print("slow request started", flush=True)  # the test waits for this line
        await asyncio.sleep(30)
    await answer(send, str(os.getpid()).encode())
