"""Bounded load and fault tests on loopback, against a real ``python -m hasten`` process.

The server runs in its own process and the slowloris client in another, so neither competes
with the measuring client for this process's GIL.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import HastenProcess, RawClient, hasten_process

SLOWLORIS = Path(__file__).with_name("slowloris.py")
SLOWLORIS_CONNECTIONS = 1000
HEADER_TIMEOUT = 6.0
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def raise_open_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.fixture(scope="module")
def server() -> Iterator[HastenProcess]:
    # The server process inherits the raised limit.
    raise_open_file_limit(4 * SLOWLORIS_CONNECTIONS)
    with hasten_process(
        "load_fault_app:app",
        "--port",
        "0",
        "--http",
        "h1",
        "--no-access-log",
        "--timeout-request-header",
        str(HEADER_TIMEOUT),
        "--backlog",
        "4096",
    ) as running:
        yield running


def connect(server: HastenProcess, timeout: float = 10.0) -> RawClient:
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return RawClient(sock)


def p99_latency(server: HastenProcess, requests: int = 400) -> float:
    """The 99th percentile of request latencies on one keep-alive connection, in seconds."""
    latencies = []
    with connect(server) as client:
        for _ in range(requests):
            started = time.perf_counter()
            client.send(GET)
            assert client.read_response().status == 200
            latencies.append(time.perf_counter() - started)
    latencies.sort()
    return latencies[int(len(latencies) * 0.99) - 1]


def received_stream_bytes(sock: socket.socket) -> int:
    """Read a chunked response to its last chunk; return how many bytes it took."""
    sock.settimeout(30)
    total = 0
    tail = b""
    buffer = bytearray(1 << 20)
    while not tail.endswith(b"\r\n0\r\n\r\n"):
        size = sock.recv_into(buffer)
        assert size, "closed before the last chunk"
        total += size
        tail = (tail + bytes(buffer[:size]))[-7:]
    return total


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def server_tasks(server: HastenProcess) -> int:
    with connect(server) as client:
        client.send(b"GET /tasks HTTP/1.1\r\nHost: t\r\n\r\n")
        return int(client.read_response().body)


def wait_until(condition: object, timeout: float) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_slowloris_connections_do_not_slow_a_normal_client(server: HastenProcess) -> None:
    # The median of three runs; and a floor: below a millisecond, scheduler noise on a
    # shared machine is larger than anything the server does.
    baseline = max(statistics.median(p99_latency(server) for _ in range(3)), 0.001)
    slowloris = subprocess.Popen(
        [
            sys.executable,
            str(SLOWLORIS),
            server.host,
            str(server.port),
            str(SLOWLORIS_CONNECTIONS),
            "0.5",
            str(HEADER_TIMEOUT + 10),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert slowloris.stdout is not None
        assert slowloris.stdout.readline().strip() == "ready"
        started = time.monotonic()
        # Noise on a busy machine: one of a few runs, while the slow heads are still open,
        # must stay within 2x.
        loaded = []
        while not loaded or time.monotonic() - started < HEADER_TIMEOUT / 2:
            loaded.append(p99_latency(server))
            if loaded[-1] <= 2 * baseline:
                break
        assert min(loaded) <= 2 * baseline, (loaded, baseline)
        result = json.loads(slowloris.stdout.readline())
        slowloris.wait(10)
    finally:
        if slowloris.poll() is None:
            slowloris.kill()
            slowloris.wait()
    # Every slow head got 408 once the header timeout passed, though bytes kept coming.
    assert result == {"statuses": {"408": SLOWLORIS_CONNECTIONS}, "still_open": 0}


def test_client_that_never_reads_a_50_mb_response_leaves_memory_flat(server: HastenProcess) -> None:
    pid = server.process.pid
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((server.host, server.port))
    client = RawClient(sock)
    with client:
        before = rss_bytes(pid)
        client.send(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        peak = before
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # observe the server while the client reads nothing
            peak = max(peak, rss_bytes(pid))
            time.sleep(0.05)
        assert peak - before < 16 * 1024 * 1024, (before, peak)
        # Backpressure, not loss: the whole response arrives once the client reads.
        assert received_stream_bytes(sock) > 50 * 1024 * 1024
    with connect(server) as probe:
        probe.send(GET)
        assert probe.read_response().status == 200


# What a client may have sent when it vanishes; the last one leaves a streaming app behind.
DROPPED_MID_REQUEST = [
    b"GET / HTTP/1.1\r\nHost: t\r\nX-Part",
    b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc",
    b"POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    GET,
]


def test_ten_thousand_dropped_connections_leak_no_tasks_or_descriptors(
    server: HastenProcess,
) -> None:
    pid = server.process.pid
    fds_before = open_fds(pid)
    tasks_before = server_tasks(server)
    batch_size = 500
    for batch in range(20):
        sockets = []
        for index in range(batch_size):
            sock = socket.create_connection((server.host, server.port), timeout=10)
            sock.sendall(DROPPED_MID_REQUEST[index % len(DROPPED_MID_REQUEST)])
            if index % 2:
                # Abortive close: RST instead of FIN.
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            sockets.append(sock)
        stream = socket.create_connection((server.host, server.port), timeout=10)
        stream.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        stream.recv(1)
        sockets.append(stream)
        for sock in sockets:
            sock.close()
        assert batch_size * (batch + 1) <= 10_000
    assert wait_until(lambda: open_fds(pid) <= fds_before, 20), (open_fds(pid), fds_before)
    assert wait_until(lambda: server_tasks(server) <= tasks_before, 20), (
        server_tasks(server),
        tasks_before,
    )
    with connect(server) as probe, contextlib.suppress(TimeoutError):
        probe.send(GET)
        assert probe.read_response().status == 200
