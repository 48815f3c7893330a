"""The programmatic API: ``hasten.run``, ``hasten.Config`` and ``hasten.Server``."""

from __future__ import annotations

import asyncio
import inspect
import socket
import subprocess
import sys
import threading
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest

import hasten
from tests.harness import run_client
from tests.subprocesses import listening_process


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"embedded"})


@pytest.mark.parametrize("target", ["object", "string"])
def test_run_serves_until_sigterm(target: str) -> None:
    with listening_process([sys.executable, "embedded_run.py", target]) as url:
        response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["x-embedded"] == "yes"


def test_run_exits_1_when_the_app_cannot_be_loaded() -> None:
    code = "import hasten; hasten.run('no_such_module_for_run:app', port=0)"
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 1
    assert 'Could not import module "no_such_module_for_run"' in result.stderr


def test_config_rejects_an_invalid_value() -> None:
    with pytest.raises(ValueError, match="port"):
        hasten.Config(app=hello, port=70000)


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url)


async def wait_started(server: hasten.Server, task: asyncio.Task[None]) -> str:
    while not server.started:
        assert not task.done(), "server stopped before it started"
        await asyncio.sleep(0.005)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    return f"http://{host}:{port}"


def test_server_serves_inside_a_running_loop_until_should_exit() -> None:
    async def main() -> bytes:
        server = hasten.Server(hasten.Config(app=hello, port=0, log_level="warning"))
        task = asyncio.create_task(server.serve())
        url = await wait_started(server, task)
        body = (await fetch(url)).content
        server.should_exit = True
        await asyncio.wait_for(task, 5)
        return body

    assert run_client(main()) == b"embedded"


def test_should_exit_set_from_another_thread_stops_the_server() -> None:
    async def main() -> None:
        server = hasten.Server(hasten.Config(app=hello, port=0, log_level="warning"))
        task = asyncio.create_task(server.serve())
        await wait_started(server, task)

        def stop() -> None:
            server.should_exit = True

        thread = threading.Thread(target=stop)
        thread.start()
        await asyncio.wait_for(task, 5)
        thread.join()

    run_client(main())


def test_server_accepts_already_listening_sockets() -> None:
    async def main() -> bytes:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = hasten.Server(hasten.Config(app=hello, log_level="warning"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await wait_started(server, task)
        body = (await fetch(f"http://127.0.0.1:{port}/")).content
        server.should_exit = True
        await asyncio.wait_for(task, 5)
        return body

    assert run_client(main()) == b"embedded"


@pytest.mark.parametrize(
    "item",
    [hasten.run, hasten.Config, hasten.Server, hasten.Server.serve, hasten.Server.run],
    ids=lambda item: item.__qualname__,
)
def test_public_api_is_documented_and_typed(item: Any) -> None:
    assert inspect.getdoc(item)
    if inspect.isfunction(item):
        hints = typing.get_type_hints(item)
        assert "return" in hints
        assert set(inspect.signature(item).parameters) - {"self"} <= set(hints)


def test_should_exit_is_a_documented_property() -> None:
    assert inspect.getdoc(hasten.Server.should_exit)


def test_package_ships_a_py_typed_marker() -> None:
    assert (Path(hasten.__file__).parent / "py.typed").exists()


def test_version_is_exported() -> None:
    assert "__version__" in hasten.__all__
    assert isinstance(hasten.__version__, str)
