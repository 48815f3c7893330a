"""A Starlette app served through the hasten CLI in tests/test_frameworks.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan"}


async def json_route(request: Request) -> JSONResponse:
    return JSONResponse({"framework": "starlette"})


async def read_item(request: Request) -> JSONResponse:
    return JSONResponse(
        {"item_id": request.path_params["item_id"], "q": request.query_params.get("q")}
    )


async def create_item(request: Request) -> JSONResponse:
    item = await request.json()
    return JSONResponse({"name": item["name"], "price_with_tax": round(item["price"] * 1.2, 2)})


async def stream(request: Request) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for number in range(5):
            yield b"%d\n" % number

    return StreamingResponse(numbers(), media_type="text/plain")


async def state(request: Request) -> JSONResponse:
    return JSONResponse({"greeting": request.state.greeting})


app = Starlette(
    routes=[
        Route("/json", json_route),
        Route("/items/{item_id:int}", read_item),
        Route("/items", create_item, methods=["POST"]),
        Route("/stream", stream),
        Route("/state", state),
    ],
    lifespan=lifespan,
)
