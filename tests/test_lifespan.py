"""The ASGI lifespan protocol: startup before serving, failures, modes and state."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import httpx

from tests.harness import request, run_server, spawn_hasten
from tests.subprocesses import run_to_exit


def test_startup_completes_before_the_socket_accepts(tmp_path: Path) -> None:
    gate, path = tmp_path / "gate", str(tmp_path / "s.sock")
    running = spawn_hasten(
        "lifespan_gated_app:app",
        "--uds",
        path,
        env={"LIFESPAN_GATE_FILE": str(gate)},
        wait_listening=False,
    )
    try:
        running.wait_for_line("startup waiting")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        else:
            raise AssertionError("the socket accepted before startup completed")
        finally:
            probe.close()
        assert "Listening on" not in running.output()
        gate.touch()
        running.wait_for_line("Listening on")
        with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as client:
            assert client.get("http://localhost/").text == "started"
        output = running.output()
        assert output.index("Application startup complete") < output.index("Listening on")
    finally:
        running.process.terminate()
        running.wait()


def test_second_sigint_during_a_hanging_startup_exits(tmp_path: Path) -> None:
    running = spawn_hasten(
        "lifespan_gated_app:app",
        "--port",
        "0",
        env={"LIFESPAN_GATE_FILE": str(tmp_path / "never-created")},
        wait_listening=False,
    )
    try:
        running.wait_for_line("startup waiting")
        running.process.send_signal(signal.SIGINT)
        running.wait_for_line("Stopping once startup completes")
        running.process.send_signal(signal.SIGINT)
        assert running.wait(timeout=5) == 3
        assert "Listening on" not in running.output()
        assert "Traceback" not in running.output()
    finally:
        if running.process.poll() is None:
            running.process.kill()


def test_startup_failed_message_is_logged_and_exit_code_is_3() -> None:
    result = run_to_exit("lifespan_failed_app:app", "--port", "0")
    assert result.returncode == 3
    assert "database unreachable" in result.stderr
    assert "Listening on" not in result.stderr


def test_exception_in_startup_with_lifespan_on_exits_3() -> None:
    result = run_to_exit("lifespan_raising_app:app", "--port", "0", "--lifespan", "on")
    assert result.returncode == 3
    assert "startup exploded" in result.stderr
    assert "Application startup failed" in result.stderr


async def no_lifespan_support(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http", "this app does not speak lifespan"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


def test_auto_mode_serves_apps_without_lifespan_support() -> None:
    with run_server(no_lifespan_support, lifespan="auto") as server, server.connect() as client:
        client.send(request())
        assert client.read_response().body == b"served"


def test_off_mode_never_calls_the_app_with_a_lifespan_scope() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        await no_lifespan_support(scope, receive, send)

    with run_server(app, lifespan="off") as server, server.connect() as client:
        client.send(request())
        client.read_response()
    assert seen == ["http"]


async def stateful_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        scope["state"]["pool"] = "connected"
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    seen = dict(scope["state"])
    scope["state"]["mutated_by_request"] = True
    body = json.dumps(seen).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_lifespan_scope_declares_lifespan_spec_2_0() -> None:
    seen: list[dict[str, str]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            seen.append(scope["asgi"])
        await stateful_app(scope, receive, send)

    with run_server(app, lifespan="on"):
        pass
    assert seen == [{"version": "3.0", "spec_version": "2.0"}]


def test_startup_state_is_visible_in_request_scopes() -> None:
    with run_server(stateful_app, lifespan="on") as server, server.connect() as client:
        client.send(request())
        assert json.loads(client.read_response().body) == {"pool": "connected"}


def test_each_request_gets_a_shallow_copy_of_the_state() -> None:
    with run_server(stateful_app, lifespan="on") as server, server.connect() as client:
        client.send(request())
        client.read_response()
        client.send(request())
        assert "mutated_by_request" not in json.loads(client.read_response().body)
