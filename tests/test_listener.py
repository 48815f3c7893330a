"""Accepting connections: every connection waiting is accepted at once, even while the
loop is busy, and running out of file descriptors pauses accepting instead of failing."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from hasten.listener import ACCEPTS_PER_WAKEUP
from tests.harness import hasten_process, run_server

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize("loop_name", ["uvloop", "asyncio"])
def test_connections_waiting_together_are_served_within_a_few_loop_iterations(
    loop_name: str,
) -> None:
    # uvloop's own servers accept one connection per loop iteration: on a busy server, a
    # burst of clients waited for as many iterations as there were clients.
    iteration = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(iteration).encode()})

    with run_server(app, loop=loop_name, access_log=False) as server:
        assert server.server.state is not None
        loop = server.server.state.loop

        def count_iterations() -> None:
            nonlocal iteration
            iteration += 1
            loop.call_soon(count_iterations)

        blocked, release = threading.Event(), threading.Event()

        def block_the_loop() -> None:
            blocked.set()
            release.wait(10)

        loop.call_soon_threadsafe(count_iterations)
        loop.call_soon_threadsafe(block_the_loop)
        assert blocked.wait(5)
        # The kernel completes these handshakes and queues them while the loop is blocked;
        # the server takes them in three batches.
        clients = [server.connect() for _ in range(2 * ACCEPTS_PER_WAKEUP + 10)]
        for client in clients:
            client.send(REQUEST)
        release.set()
        served_in = [int(client.read_response().body) for client in clients]
        for client in clients:
            client.close()
    assert max(served_in) - min(served_in) <= 4, served_in


@pytest.mark.parametrize("loop_name", ["uvloop", "asyncio"])
def test_out_of_file_descriptors_pauses_accepting_and_loses_no_client(loop_name: str) -> None:
    # The app leaves the server room for its listening socket and a few connections.
    with hasten_process(
        "fd_limited_app:app", "--port", "0", "--loop", loop_name, "--no-access-log",
        env={"FD_HEADROOM": "4"},
    ) as server:  # fmt: skip
        served = []
        for _ in range(3):
            sock = socket.create_connection((server.host, server.port), timeout=5)
            sock.sendall(REQUEST)
            assert b"served" in sock.recv(4096)
            served.append(sock)
        # No descriptor is left for these: they wait in the accept queue.
        waiting = [socket.create_connection((server.host, server.port), timeout=10)]
        waiting.append(socket.create_connection((server.host, server.port), timeout=10))
        for sock in waiting:
            sock.sendall(REQUEST)
        server.wait_for_line("Could not accept a connection")
        for sock in served:
            sock.close()
        for sock in waiting:
            assert b"served" in sock.recv(4096)
            sock.close()
        assert server.process.poll() is None
