"""``--metrics-bind``: Prometheus metrics summed over real worker processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time

from tests.harness import HastenProcess, RawClient, hasten_process, request
from tests.supervisors.test_multiprocess import get_pid, port_in_use, wait_for_pids, wait_until
from tests.test_config_sources import run_hasten


def metrics_port(running: HastenProcess) -> int:
    line = running.wait_for_line("Metrics on http://")
    return int(re.search(r":(\d+)/metrics", line)[1])  # type: ignore[index]


def scrape(running: HastenProcess, path: str = "/metrics") -> tuple[int, str]:
    sock = socket.create_connection(("127.0.0.1", metrics_port(running)), timeout=5)
    with RawClient(sock) as client:
        client.send(request(path=path))
        response = client.read_response()
    return response.status, response.body.decode()


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


def wait_for_sample(running: HastenProcess, name: str, value: float) -> str:
    deadline = time.monotonic() + 10
    while True:
        text = scrape(running)[1]
        if sample(text, name) == value:
            return text
        assert time.monotonic() < deadline, f"{name} != {value}:\n{text}"
        time.sleep(0.05)


def test_request_counts_and_latency_are_summed_over_workers() -> None:
    with hasten_process(
        "proc_pid:app", "--port", "0", "--workers", "2", "--metrics-bind", "127.0.0.1:0"
    ) as running:
        wait_for_pids(running, 2)
        for _ in range(6):
            get_pid(running)
        text = wait_for_sample(running, 'hasten_requests_total{status="200"}', 6.0)
        assert sample(text, "hasten_request_duration_seconds_count") == 6.0
        assert sample(text, "hasten_requests_in_flight") == 0.0
        assert "hasten_open_connections" in text


def test_counts_of_a_killed_worker_survive_and_its_restart_is_counted() -> None:
    with hasten_process(
        "proc_pid:app",
        "--port",
        "0",
        "--workers",
        "1",
        "--metrics-bind",
        "127.0.0.1:0",
    ) as running:
        (first,) = wait_for_pids(running, 1)
        for _ in range(3):
            get_pid(running)
        wait_for_sample(running, 'hasten_requests_total{status="200"}', 3.0)
        os.kill(first, signal.SIGKILL)
        wait_for_pids(running, 2)
        get_pid(running)
        text = wait_for_sample(running, 'hasten_requests_total{status="200"}', 4.0)
        assert sample(text, 'hasten_worker_restarts_total{reason="died"}') == 1.0


def test_other_paths_on_the_metrics_port_are_404() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--metrics-bind", "127.0.0.1:0") as running:
        assert scrape(running, "/")[0] == 404


def test_metrics_bind_without_a_port_is_a_usage_error() -> None:
    result = run_hasten("proc_pid:app", "--metrics-bind", "localhost")
    assert result.returncode == 2
    assert "metrics_bind='localhost' is not allowed; use HOST:PORT" in result.stderr


def test_metrics_port_in_use_stops_hasten_with_status_3() -> None:
    with port_in_use() as port:
        result = run_hasten("proc_pid:app", "--port", "0", "--metrics-bind", f"127.0.0.1:{port}")
    assert result.returncode == 3
    assert "Address already in use" in result.stderr


def test_slow_trickling_scrape_neither_stalls_the_supervisor_nor_outlives_its_deadline() -> None:
    with hasten_process(
        "proc_pid:app",
        "--port",
        "0",
        "--workers",
        "2",
        "--timeout-worker-healthcheck",
        "1",
        "--metrics-bind",
        "127.0.0.1:0",
        "--timeout-metrics-scrape",
        "5",
    ) as running:
        workers = set(wait_for_pids(running, 2))
        slow = socket.create_connection(("127.0.0.1", metrics_port(running)), timeout=10)
        started = time.monotonic()
        stop = threading.Event()

        def trickle() -> None:
            # A request head that never ends, one byte every 0.6 s: never idle for 1 s.
            for byte in b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 100:
                try:
                    slow.send(bytes([byte]))
                except OSError:
                    break
                if stop.wait(0.6):
                    return

        thread = threading.Thread(target=trickle)
        thread.start()
        try:
            # Longer than the health-check timeout, while the slow scrape is held open.
            while time.monotonic() - started < 2.5:
                assert scrape(running)[0] == 200
            assert slow.recv(1) == b""  # closed by the server, without an answer
            held = time.monotonic() - started
        finally:
            stop.set()
            thread.join(10)
            slow.close()
        assert 4.0 <= held <= 7.0, held
        assert "health check" not in running.output()
        assert "died" not in running.output()
        assert {get_pid(running) for _ in range(6)} <= workers


def test_metrics_bind_without_a_host_listens_on_loopback_only() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--metrics-bind", ":0") as running:
        assert "Metrics on http://127.0.0.1:" in running.wait_for_line("Metrics on http://")


def test_scrapes_beyond_the_concurrency_bound_are_answered_503() -> None:
    with hasten_process(
        "proc_pid:app",
        "--port",
        "0",
        "--metrics-bind",
        "127.0.0.1:0",
        "--limit-metrics-scrapes",
        "3",
    ) as running:
        port = metrics_port(running)
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        try:
            assert scrape(running)[0] == 503
        finally:
            for sock in held:
                sock.close()
        # The slots free up as the supervisor sees those connections close.
        wait_until(lambda: scrape(running)[0] == 200, what="a scrape slot to free up")
