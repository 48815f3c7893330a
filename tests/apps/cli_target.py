"""Apps for the CLI tests: a plain app, a dotted attribute, factories and a non-callable."""

from __future__ import annotations

import asyncio
import json
import types
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with facts about its scope and event loop, as JSON."""
    if scope["type"] != "http":
        return
    loop = asyncio.get_running_loop()
    body = json.dumps(
        {
            "path": scope["path"],
            "root_path": scope["root_path"],
            "loop_module": type(loop).__module__,
            "client": scope["client"],
            "scheme": scope["scheme"],
            "server": scope["server"],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


holder = types.SimpleNamespace(inner=types.SimpleNamespace(app=app))


def make_app() -> Any:
    return app


def broken_factory() -> Any:
    raise RuntimeError("the factory is broken")


not_an_app = 42
