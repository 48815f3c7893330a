"""The worker supervisor, as a real ``hasten --workers N`` process receiving real signals."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import (
    HastenProcess,
    RawClient,
    hasten_command,
    hasten_process,
    listening_on,
    request,
)

_SERVING = re.compile(r"Worker \[(\d+)\] is serving")


def started_pids(running: HastenProcess) -> list[int]:
    """The workers the supervisor has seen serving, in order."""
    return [int(m[1]) for line in list(running.lines) if (m := _SERVING.search(line))]


def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_for_pids(running: HastenProcess, count: int, timeout: float = 10.0) -> list[int]:
    wait_until(lambda: len(started_pids(running)) >= count, timeout, f"{count} workers")
    return started_pids(running)


def get_pid(running: HastenProcess, path: str = "/") -> int:
    """One request on a fresh connection; the body is the pid of the worker that served it."""
    sock = socket.create_connection((running.host, running.port), timeout=5)
    with RawClient(sock) as client:
        client.send(request(path=path, headers={"Connection": "close"}))
        response = client.read_response()
    assert response.status == 200
    return int(response.body)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_share_one_port() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--workers", "2") as running:
        pids = wait_for_pids(running, 2)
        running.wait_for_line("Listening on")
        assert len(set(pids)) == 2
        assert {get_pid(running) for _ in range(20)} <= set(pids)


def test_killed_worker_is_replaced() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--workers", "2") as running:
        first, second = wait_for_pids(running, 2)[:2]
        os.kill(first, signal.SIGKILL)
        running.wait_for_line(f"Worker [{first}] died (killed by SIGKILL); starting a new one")
        pids = wait_for_pids(running, 3)
        assert pids[2] not in (first, second)
        assert get_pid(running) in (second, pids[2])


def test_sighup_restarts_every_worker_without_a_failed_request() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--workers", "2") as running:
        old = set(wait_for_pids(running, 2))
        time.sleep(0.2)  # both workers listening
        failures: list[BaseException] = []
        served: list[int] = []
        stop = threading.Event()

        def client_loop() -> None:
            while not stop.is_set():
                try:
                    served.append(get_pid(running))
                except BaseException as exc:
                    failures.append(exc)

        thread = threading.Thread(target=client_loop)
        thread.start()
        try:
            wait_until(lambda: len(served) > 20, what="requests before SIGHUP")
            running.process.send_signal(signal.SIGHUP)
            wait_until(lambda: not any(alive(pid) for pid in old), 20, "old workers to stop")
            count = len(served)
            wait_until(lambda: len(served) > count + 20, what="requests after the restart")
        finally:
            stop.set()
            thread.join(10)
        assert failures == []
        new = set(started_pids(running)) - old
        assert len(new) == 2
        assert set(served[-10:]) <= new


def test_sigttin_adds_and_sigttou_removes_a_worker() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--workers", "2") as running:
        first, second = wait_for_pids(running, 2)
        running.process.send_signal(signal.SIGTTIN)
        running.wait_for_line("Received SIGTTIN: now 3 worker(s)")
        third = wait_for_pids(running, 3)[2]
        running.process.send_signal(signal.SIGTTOU)
        running.wait_for_line("Received SIGTTOU: now 2 worker(s)")
        running.wait_for_line(f"Worker [{third}] stopped")
        assert alive(first)
        assert alive(second)
        assert {get_pid(running) for _ in range(10)} <= {first, second}


def test_sigterm_stops_the_workers_gracefully() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--workers", "2") as running:
        pids = wait_for_pids(running, 2)
        running.process.send_signal(signal.SIGTERM)
        assert running.wait() == 0
        output = running.output()
        assert output.count("Application shutdown complete.") == 2
        for pid in pids:
            assert f"Worker [{pid}] stopped (exit code 0)" in output
            assert not alive(pid)


def test_max_requests_replaces_the_worker_after_its_successor_serves() -> None:
    with hasten_process(
        "proc_pid:app", "--port", "0", "--limit-max-requests", "5", "--log-level", "info"
    ) as running:
        (first,) = wait_for_pids(running, 1)
        served = [get_pid(running) for _ in range(5)]
        assert served == [first] * 5
        running.wait_for_line(f"Worker [{first}] served 5 requests")
        second = wait_for_pids(running, 2)[1]
        running.wait_for_line(f"Worker [{first}] stopped (exit code 0)")
        assert get_pid(running) == second


@contextlib.contextmanager
def one_worker_blocked() -> Iterator[HastenProcess]:
    """Two workers with a 1 s health check; one of them stuck in a blocking call."""
    with hasten_process(
        "proc_pid:app", "--port", "0", "--workers", "2", "--timeout-worker-healthcheck", "1"
    ) as running:
        wait_for_pids(running, 2)
        with socket.create_connection((running.host, running.port), timeout=5) as sock:
            sock.sendall(request(path="/block"))
            running.wait_for_line("blocking the event loop")
            yield running


def test_unresponsive_worker_is_killed_and_replaced() -> None:
    with one_worker_blocked() as running:
        line = running.wait_for_line("did not answer the health check", timeout=10)
        blocked = int(re.findall(r"\[(\d+)\]", line)[0])
        running.wait_for_line(f"Worker [{blocked}] died (killed by SIGKILL)")
        wait_for_pids(running, 3)
        assert get_pid(running) != blocked


def test_memory_limit_recycles_a_worker() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--limit-max-memory", "1") as running:
        (first,) = wait_for_pids(running, 1)
        running.wait_for_line(f"Worker [{first}] uses")
        wait_for_pids(running, 2)
        running.wait_for_line(f"Worker [{first}] stopped")


def test_reuse_port_workers_each_listen_on_the_same_port() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--workers", "2", "--reuse-port") as running:
        pids = wait_for_pids(running, 2)
        wait_until(lambda: running.output().count("Listening on") == 2, what="two listeners")
        ports = set(re.findall(r"Listening on http://127.0.0.1:(\d+)", running.output()))
        assert ports == {str(running.port)}
        assert {get_pid(running) for _ in range(20)} <= set(pids)


def test_app_that_cannot_load_stops_the_supervisor_with_status_1() -> None:
    with hasten_process(
        "no_such_module:app", "--port", "0", "--workers", "2", wait_listening=False
    ) as running:
        assert running.wait() == 1
        assert "failed to start" in running.output()


@contextlib.contextmanager
def port_in_use() -> Iterator[int]:
    """A port another socket is listening on for the duration of the block."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_port_in_use_stops_the_supervisor_with_status_3() -> None:
    with port_in_use() as taken_port:
        port = str(taken_port)
        with hasten_process(
            "proc_pid:app", "--port", port, "--workers", "2", wait_listening=False
        ) as running:
            assert running.wait() == 3
            assert "Address already in use" in running.output()


def test_worker_dying_at_startup_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    marker = tmp_path / "broken"
    env = {"PROC_FRAGILE_MARKER": str(marker)}
    with hasten_process("proc_fragile:app", "--port", "0", "--workers", "2", env=env) as running:
        first, second = wait_for_pids(running, 2)
        marker.touch()
        os.kill(first, signal.SIGKILL)
        running.wait_for_line("during startup (exit code 1); starting a new one in 0.5 s")
        running.wait_for_line("during startup (exit code 1); starting a new one in 1.0 s")
        assert get_pid(running) == second  # the healthy worker serves on
        marker.unlink()
        wait_for_pids(running, 3, timeout=15)


def test_graceful_stop_is_bounded_by_the_shutdown_timeout(tmp_path: Path) -> None:
    env = {"PROC_FRAGILE_MARKER": str(tmp_path / "absent")}
    with hasten_process(
        "proc_fragile:app",
        "--port",
        "0",
        "--workers",
        "2",
        "--timeout-graceful-shutdown",
        "0.5",
        env=env,
    ) as running:
        wait_for_pids(running, 2)
        sock = socket.create_connection((running.host, running.port), timeout=5)
        sock.sendall(request(path="/slow"))
        running.wait_for_line("slow request started")
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        assert running.wait(10) == 0
        assert time.monotonic() - started < 5
        assert "Graceful shutdown timed out" in running.output()
        sock.close()


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--workers", "2") as running:
        pids = wait_for_pids(running, 2)
        running.process.kill()
        running.wait_for_line("lost its supervisor; stopping")
        wait_until(lambda: not any(alive(pid) for pid in pids), what="orphaned workers to exit")


def test_workers_serve_an_inherited_socket_as_with_systemd_activation() -> None:
    from tests.subprocesses import listening_process

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        fd = listener.fileno()
        command = hasten_command("proc_pid:app", "--fd", str(fd), "--workers", "2")
        with listening_process(command, pass_fds=[fd]) as url:
            assert url == f"http://127.0.0.1:{port}"
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            with RawClient(sock) as client:
                client.send(request(headers={"Connection": "close"}))
                assert client.read_response().status == 200


def test_rolling_restart_into_broken_code_keeps_the_old_workers_serving(tmp_path: Path) -> None:
    marker = tmp_path / "broken"
    env = {"PROC_FRAGILE_MARKER": str(marker)}
    with hasten_process("proc_fragile:app", "--port", "0", "--workers", "2", env=env) as running:
        old = set(wait_for_pids(running, 2))
        marker.touch()
        running.process.send_signal(signal.SIGHUP)
        running.wait_for_line("died during startup")
        assert {get_pid(running) for _ in range(10)} <= old
        marker.unlink()
        wait_until(lambda: not any(alive(pid) for pid in old), 20, "old workers to stop")
        assert get_pid(running) not in old


def test_max_requests_jitter_adds_at_most_the_jitter() -> None:
    with hasten_process(
        "proc_pid:app",
        "--port",
        "0",
        "--limit-max-requests",
        "2",
        "--limit-max-requests-jitter",
        "3",
    ) as running:
        (first,) = wait_for_pids(running, 1)
        for _ in range(5):
            get_pid(running)
        line = running.wait_for_line(f"Worker [{first}] served")
        assert 2 <= int(re.findall(r"served (\d+) requests", line)[0]) <= 5


def test_stop_does_not_wait_forever_for_a_hung_worker() -> None:
    with one_worker_blocked() as running:
        running.process.send_signal(signal.SIGTERM)
        assert running.wait(10) == 0
        assert "did not answer the health check" in running.output()


def socket_inodes(pid: int) -> set[str]:
    """The sockets process ``pid`` holds open, by inode."""
    return {
        target
        for fd in Path(f"/proc/{pid}/fd").iterdir()
        if (target := os.readlink(fd)).startswith("socket:[")
    }


def test_reuse_port_workers_do_not_inherit_the_port_reservation() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--workers", "2", "--reuse-port") as running:
        pids = wait_for_pids(running, 2)
        supervisor = socket_inodes(running.process.pid)
        # Each worker binds its own socket and has its own channel: a socket it shares with
        # the supervisor can only be the reservation, which would hold the port after it.
        for pid in pids:
            assert socket_inodes(pid) & supervisor == set()


def pid_over(listener: str) -> int:
    """One request to a logged listener (``http://HOST:PORT``, ``unix socket PATH``); the
    body is the pid of the worker that served it."""
    if listener.startswith("unix socket "):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(5)
        sock.connect(listener.removeprefix("unix socket "))
    else:
        host, port = listener.removeprefix("http://").rsplit(":", 1)
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
    with RawClient(sock) as client:
        client.send(request(headers={"Connection": "close"}))
        response = client.read_response()
    assert response.status == 200
    return int(response.body)


@pytest.mark.parametrize(
    ("second_bind", "mode"),
    [("127.0.0.1:0", ()), ("127.0.0.1:0", ("--reuse-port",)), ("unix", ("--reuse-port",))],
    ids=["shared", "reuse-port", "reuse-port-beside-unix"],
)
def test_every_worker_serves_every_bind(
    tmp_path: Path, second_bind: str, mode: tuple[str, ...]
) -> None:
    if second_bind == "unix":
        second_bind = f"unix:{tmp_path / 'app.sock'}"
    with hasten_process(
        "proc_pid:app",
        "--bind",
        "127.0.0.1:0",
        "--bind",
        second_bind,
        "--workers",
        "2",
        *mode,
    ) as running:
        pids = set(wait_for_pids(running, 2))
        wait_until(lambda: running.output().count("Listening on") == 4, what="four listeners")
        listeners = listening_on(running, 2)
        # Each worker names each listener once, and port 0 is the same port in both.
        logged = [
            line.split("Listening on ", 1)[1].split(" (Press", 1)[0]
            for line in running.lines
            if "Listening on" in line
        ]
        assert sorted(logged) == sorted(listeners * 2)
        for listener in listeners:
            assert {pid_over(listener) for _ in range(10)} <= pids
