"""A 64 MiB file, for the ``file`` and ``static`` scenarios: Starlette's ``FileResponse`` at
``/big.bin`` (it sends ``http.response.pathsend`` where the server offers it, chunks
otherwise) and Starlette's ``StaticFiles`` at ``/static``, which a server's own static
mount of the same directory answers in front of the app (hasten's and granian's
``--static-path-mount``). ``bench/run.py`` makes the file before any server starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

FILES_DIR = Path(tempfile.gettempdir()) / "hasten-bench-files"
BIG_FILE = FILES_DIR / "big.bin"
BIG_FILE_SIZE = 64 * 1024 * 1024


def make_big_file() -> None:
    """Write the file of random bytes, unless it is there already."""
    if BIG_FILE.exists() and BIG_FILE.stat().st_size == BIG_FILE_SIZE:
        return
    FILES_DIR.mkdir(exist_ok=True)
    partial = BIG_FILE.with_suffix(".partial")
    with partial.open("wb") as handle:
        for _ in range(BIG_FILE_SIZE // (1024 * 1024)):
            handle.write(os.urandom(1024 * 1024))
    partial.replace(BIG_FILE)


async def big_file(request: Request) -> FileResponse:
    return FileResponse(BIG_FILE, media_type="application/octet-stream")


app = Starlette(
    routes=[
        Route("/big.bin", big_file),
        Mount("/static", StaticFiles(directory=FILES_DIR, check_dir=False)),
    ]
)
