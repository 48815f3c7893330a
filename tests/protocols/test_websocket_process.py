"""WebSockets through ``python -m hasten``: the ws_* options on the command line, and a
SIGTERM that closes open WebSockets with 1001."""

from __future__ import annotations

import asyncio
import signal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.harness import hasten_process
from tests.protocols.ws_support import run


def test_ws_max_size_option_closes_a_larger_message_with_1009() -> None:
    async def send_big(url: str) -> int | None:
        async with connect(url) as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"
            await ws.send("x" * 101)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code if closed.value.rcvd else None

    with hasten_process("ws_echo:app", "--port", "0", "--ws-max-size", "100") as server:
        assert run(send_big(f"ws://{server.host}:{server.port}/")) == 1009


def test_ws_none_option_leaves_the_upgrade_to_plain_http() -> None:
    async def open_ws(url: str) -> None:
        async with connect(url):
            pass

    with (
        hasten_process("ws_echo:app", "--port", "0", "--ws", "none") as server,
        pytest.raises(InvalidStatus, match="404"),
    ):
        run(open_ws(f"ws://{server.host}:{server.port}/"))


def test_sigterm_closes_open_websockets_with_1001_and_exits() -> None:
    async def wait_for_close(url: str, process: object) -> int | None:
        async with connect(url) as ws:
            await ws.send("ready")
            assert await ws.recv() == "ready"
            process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code if closed.value.rcvd else None

    with hasten_process("ws_echo:app", "--port", "0") as server:
        url = f"ws://{server.host}:{server.port}/"
        assert run(wait_for_close(url, server.process)) == 1001
        assert server.wait(timeout=10) == 0
