"""Complete HTTP/1.1 responses held for the end of the loop turn (``write_at_turn_end``):
held, then written together, in order with everything else the connection writes, and
never lost when the connection closes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from hasten import Config
from hasten.protocols.http1.connection import H1Connection
from hasten.protocols.http1.cycle import TURN_END_BATCH, end_turn
from hasten.state import ServerState
from tests.harness import request, run_server
from tests.protocols.http1_apps import wait_for

# -- against a real server -------------------------------------------------------------------


class RecordingTransport:
    """Wraps a connection's transport and logs its writes into a log shared with the app."""

    def __init__(self, transport: Any, log: list[str], name: str) -> None:
        self.transport = transport
        self.log = log
        self.name = name

    def write(self, data: bytes) -> None:
        self.log.append(f"write {self.name}")
        self.transport.write(data)

    def writelines(self, parts: Any) -> None:
        self.log.append(f"write {self.name}")
        self.transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def test_responses_finished_in_one_turn_leave_in_bounded_batches() -> None:
    clients = 2 * TURN_END_BATCH + 5
    log: list[str] = []
    all_arrived = asyncio.Event()
    arrived = 0

    async def barrier_app(scope: Any, receive: Any, send: Any) -> None:
        # Every app waits for the last request: then all of them finish in one loop turn.
        nonlocal arrived
        if scope["type"] != "http":
            return
        arrived += 1
        if arrived == clients:
            all_arrived.set()
        await all_arrived.wait()
        body = scope["path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        log.append(f"sending {scope['path'][1:]}")
        await send({"type": "http.response.body", "body": body})

    with run_server(barrier_app, loop="uvloop") as server:
        state = server.server.state
        assert state is not None
        connected = [server.connect() for _ in range(clients)]
        try:
            conns = wait_for(lambda: len(state.connections) == clients and state.connections)
            # Each connection's transport logs under the index of its client (by port).
            ports = {client.sock.getsockname()[1]: index for index, client in enumerate(connected)}
            for conn in conns:
                index = ports[conn.client[1]]
                conn.transport = RecordingTransport(conn.transport, log, str(index))
            for index, client in enumerate(connected):
                client.send(request(path=f"/{index}"))
            for index, client in enumerate(connected):
                response = client.read_response()
                assert response.status == 200
                assert response.body == f"/{index}".encode()
        finally:
            for client in connected:
                client.close()
    # No write until a batch is full; each full batch leaves at once, in the order its
    # responses finished; the rest leaves at the end of the turn.
    sent_order = [entry.split()[1] for entry in log if entry.startswith("sending")]
    batch = TURN_END_BATCH
    expected: list[str] = []
    for start in range(0, clients, batch):
        names = sent_order[start : start + batch]
        expected += [f"sending {name}" for name in names]
        expected += [f"write {name}" for name in names]
    assert log == expected


def test_held_response_is_followed_in_order_by_an_error_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first"})

    with run_server(app) as server, server.connect() as client:
        client.send(request(path="/a") + b"NOT HTTP AT ALL\r\n\r\n")
        assert client.read_response().body == b"first"
        assert client.read_response().status == 400
        assert client.is_closed()


def test_pipelined_responses_stay_in_order_across_turns() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"].endswith("5"):
            await asyncio.sleep(0)  # this one's head goes out before its body
        await send({"type": "http.response.body", "body": body})

    with run_server(app) as server, server.connect() as client:
        client.send(b"".join(request(path=f"/{index}") for index in range(20)))
        assert [client.read_response().body for _ in range(20)] == [
            f"/{index}".encode() for index in range(20)
        ]


# -- H1Connection on a transport that records ----------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.writes.append(b"".join(parts))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.aborted = self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.fixture
def state() -> Iterator[ServerState]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    loop = asyncio.new_event_loop()
    try:
        yield ServerState(Config(app=app), app, loop)
    finally:
        loop.close()


def connect(state: ServerState) -> tuple[H1Connection, FakeTransport]:
    conn = H1Connection(state)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def test_held_output_waits_for_the_end_of_the_turn(state: ServerState) -> None:
    conn, transport = connect(state)
    conn.write_at_turn_end(b"one")
    conn.write_at_turn_end(b"two")
    assert transport.writes == []
    assert state.turn_end == [conn]
    end_turn(state.turn_end)
    assert transport.writes == [b"onetwo"]
    assert state.turn_end == []
    assert conn.held_output == b""
    assert not conn.awaits_turn_end


def test_a_direct_write_sends_what_is_held_first(state: ServerState) -> None:
    conn, transport = connect(state)
    conn.write_at_turn_end(b"held ")
    conn.write(b"now")
    assert transport.writes == [b"held now"]
    end_turn(state.turn_end)
    assert transport.writes == [b"held now"]


@pytest.mark.parametrize("closing_by", ["close_transport", "hand_over", "eof_received"])
def test_held_output_is_written_before_the_connection_closes(
    state: ServerState, closing_by: str
) -> None:
    conn, transport = connect(state)
    conn.write_at_turn_end(b"held")
    getattr(conn, closing_by)()
    assert transport.writes == [b"held"]


def test_aborted_connection_drops_held_output(state: ServerState) -> None:
    conn, transport = connect(state)
    conn.write_at_turn_end(b"held")
    conn.abort()
    end_turn(state.turn_end)
    assert transport.writes == []
    assert transport.aborted


def test_a_full_batch_leaves_at_once(state: ServerState) -> None:
    pairs = [connect(state) for _ in range(TURN_END_BATCH)]
    for conn, _ in pairs[:-1]:
        conn.write_at_turn_end(b"x")
    assert all(transport.writes == [] for _, transport in pairs)
    pairs[-1][0].write_at_turn_end(b"x")
    assert all(transport.writes == [b"x"] for _, transport in pairs)
    assert state.turn_end == []
