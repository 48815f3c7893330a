"""The FastAPI app of the ``json`` scenario: one route returning a small JSON object."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.get("/json")
async def small_json() -> dict[str, Any]:
    return {"message": "Hello, world!", "id": 1, "ok": True}
