"""Graceful shutdown of a real ``hasten`` process on real signals."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hasten import Config
from tests.harness import (
    HastenProcess,
    RawClient,
    hasten_process,
    request,
    run_server,
    spawn_hasten,
)


@pytest.fixture
def release_file(tmp_path: Path) -> Path:
    return tmp_path / "release"


@pytest.fixture
def slow_server(release_file: Path, request: pytest.FixtureRequest) -> Iterator[HastenProcess]:
    loop = getattr(request, "param", "auto")
    running = spawn_hasten(
        "slow_app:app",
        "--port",
        "0",
        "--timeout-keep-alive",
        "60",
        "--loop",
        loop,
        env={"SLOW_APP_RELEASE_FILE": str(release_file)},
    )
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
        running.wait()


def connect(running: HastenProcess) -> RawClient:
    return RawClient(socket.create_connection((running.host, running.port), timeout=10))


def start_slow_request(running: HastenProcess) -> RawClient:
    client = connect(running)
    client.send(request("GET", "/slow"))
    running.wait_for_line("request started")
    return client


def signal_and_wait_for_shutdown(running: HastenProcess, sig: int) -> None:
    running.process.send_signal(sig)
    running.wait_for_line("Shutting down")


@pytest.mark.parametrize("slow_server", ["uvloop", "asyncio"], indirect=True)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_in_flight_request_completes_with_connection_close_and_exit_0(
    slow_server: HastenProcess, release_file: Path, sig: int
) -> None:
    client = start_slow_request(slow_server)
    signal_and_wait_for_shutdown(slow_server, sig)
    release_file.touch()
    response = client.read_response()
    assert response.status == 200
    assert response.body == b"/slow"
    assert response.header("connection") == "close"
    assert client.is_closed()
    assert slow_server.wait() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_new_connections_are_refused_once_shutdown_starts(
    slow_server: HastenProcess, release_file: Path, sig: int
) -> None:
    client = start_slow_request(slow_server)
    signal_and_wait_for_shutdown(slow_server, sig)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((slow_server.host, slow_server.port), timeout=5)
    release_file.touch()
    client.read_response()
    assert slow_server.wait() == 0


def test_idle_keep_alive_connections_are_closed_at_shutdown(
    slow_server: HastenProcess, release_file: Path
) -> None:
    idle = connect(slow_server)
    idle.send(request("GET", "/"))
    assert idle.read_response().header("connection") != "close"
    busy = start_slow_request(slow_server)
    signal_and_wait_for_shutdown(slow_server, signal.SIGTERM)
    # Closed while the slow request is still running, not only when the process exits.
    assert idle.is_closed(timeout=5)
    assert slow_server.process.poll() is None
    release_file.touch()
    busy.read_response()
    assert slow_server.wait() == 0


def test_lifespan_shutdown_runs_after_in_flight_requests_finish(
    slow_server: HastenProcess, release_file: Path
) -> None:
    client = start_slow_request(slow_server)
    signal_and_wait_for_shutdown(slow_server, signal.SIGTERM)
    release_file.touch()
    client.read_response()
    assert slow_server.wait() == 0
    output = slow_server.output()
    assert output.index("request finished") < output.index("lifespan shutdown")
    assert "Application shutdown complete" in output


def test_graceful_shutdown_timeout_cancels_the_request_and_exits_0(tmp_path: Path) -> None:
    running = spawn_hasten("slow_app:app", "--port", "0", "--timeout-graceful-shutdown", "1")
    try:
        client = connect(running)
        client.send(request("GET", "/never"))
        running.wait_for_line("request started")
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        assert running.wait(timeout=10) == 0
        assert time.monotonic() - started < 4
        assert client.is_closed()
        output = running.output()
        assert "request cancelled" in output
        assert "lifespan shutdown" in output
    finally:
        if running.process.poll() is None:
            running.process.kill()


def test_second_sigint_forces_the_exit(tmp_path: Path) -> None:
    running = spawn_hasten("slow_app:app", "--port", "0")
    try:
        client = connect(running)
        client.send(request("GET", "/never"))
        running.wait_for_line("request started")
        signal_and_wait_for_shutdown(running, signal.SIGINT)
        running.wait_for_line("Waiting for connections to close")
        assert running.process.poll() is None
        running.process.send_signal(signal.SIGINT)
        assert running.wait(timeout=5) == 0
        assert client.is_closed()
        assert "Traceback" not in running.output()
    finally:
        if running.process.poll() is None:
            running.process.kill()


async def ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_unix_socket_file_is_removed_after_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "server.sock"
    with run_server(ok, lifespan="off", uds=str(path)) as server, server.connect() as client:
        client.send(request())
        assert client.read_response().status == 204
        assert path.exists()
    assert not path.exists()


def test_stale_unix_socket_file_is_replaced_at_startup(tmp_path: Path) -> None:
    path = tmp_path / "server.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    with run_server(ok, lifespan="off", uds=str(path)) as server, server.connect() as client:
        client.send(request())
        assert client.read_response().status == 204


def test_port_in_use_is_one_error_line_and_exit_code_3() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = spawn_hasten("slow_app:app", "--port", str(port), wait_listening=False)
        assert running.wait() == 3
    errors = [line for line in running.lines if line.startswith("ERROR")]
    assert len(errors) == 1
    assert "Could not listen" in errors[0]
    assert "lifespan shutdown" in running.output()


@pytest.mark.parametrize("option", [[], ["--gc-threshold", "5000"], ["--gc-threshold", "0"]])
def test_gc_threshold_is_set_once_the_server_starts(option: list[str]) -> None:
    python_default = subprocess.run(
        [sys.executable, "-c", "import gc; print(gc.get_threshold()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    expected = {"": "20000", "5000": "5000", "0": python_default}[option[-1] if option else ""]
    with (
        hasten_process("gc_threshold_app:app", "--port", "0", *option) as running,
        urllib.request.urlopen(running.url, timeout=10) as response,
    ):
        assert response.read().decode() == expected


def test_unix_socket_file_bound_since_by_another_instance_is_left_in_place(
    tmp_path: Path,
) -> None:
    path = tmp_path / "server.sock"
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with run_server(ok, lifespan="off", uds=str(path)):
            path.unlink()  # another instance starts and binds the same path
            other.bind(str(path))
            other.listen()
            inode = path.stat().st_ino
        assert path.stat().st_ino == inode
    finally:
        other.close()


@pytest.mark.parametrize(("mode", "bits"), [(None, 0o666), ("600", 0o600), ("0o660", 0o660)])
def test_uds_mode_sets_the_permissions_of_the_socket_file(
    tmp_path: Path, mode: str | None, bits: int
) -> None:
    path = tmp_path / "server.sock"
    settings = {} if mode is None else {"uds_mode": mode}
    with run_server(ok, lifespan="off", uds=str(path), **settings):
        assert stat.S_IMODE(path.stat().st_mode) == bits


def test_uds_mode_that_is_not_octal_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="uds_mode='8'"):
        Config(app="x:y", uds_mode="8")
