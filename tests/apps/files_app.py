"""Files as response bodies, for tests/test_files_served.py: ``/pathsend?path=ABSOLUTE``
sends the file by ``http.response.pathsend``; ``/starlette?path=ABSOLUTE`` answers with
Starlette's ``FileResponse`` (which uses pathsend where the server offers it)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route


async def file_response(request: Request) -> FileResponse:
    return FileResponse(request.query_params["path"])


starlette_app = Starlette(routes=[Route("/starlette", file_response)])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http" or scope["path"] != "/pathsend":
        await starlette_app(scope, receive, send)
        return
    path = parse_qs(scope["query_string"].decode())["path"][0]
    size = os.stat(path).st_size
    headers = [(b"content-length", b"%d" % size), (b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.pathsend", "path": path})
