"""A hello app whose process can open only a few more files than it had at import: the
server runs out of file descriptors after FD_HEADROOM more (its listening socket included)."""

import os
import resource
from typing import Any

FD_HEADROOM = int(os.environ.get("FD_HEADROOM", "6"))
_open_at_import = len(os.listdir("/proc/self/fd"))
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (_open_at_import + FD_HEADROOM, _hard))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})
