"""An HTTP/2 state machine's own cost per request, with no server around it:
``python -m bench.h2_floor [--machine h2|hasten]``.

A server cannot serve HTTP/2 faster than its state machine parses a request and serialises
a response. This feeds a server-side machine the bytes of ``h2load -m32``-like batches from
h2's client, answers each stream with hello's response, and reports the microseconds per
request spent receiving and responding. ``h2`` is h2's ``H2Connection`` configured as
hasten's (no header validation or normalisation by h2); ``hasten`` is hasten's own
``http2/machine.py``. Single process, no sockets, no event loop.
"""

from __future__ import annotations

import argparse
import time

import h2.config
import h2.connection
import h2.events

from hasten.config import Config, settings_view
from hasten.protocols.http2.limits import H2Limits
from hasten.protocols.http2.machine import REQUEST as REQUEST_EVENT
from hasten.protocols.http2.machine import H2Machine

REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8000"),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
]
RESPONSE = [
    (b":status", b"200"),
    (b"date", b"Wed, 25 Nov 2026 08:00:00 GMT"),
    (b"server", b"hasten"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
]


def server_configuration() -> h2.config.H2Configuration:
    """h2's server side as hasten configured it while it served HTTP/2 with h2: received
    fields checked by ``http2.fields`` and sent ones by ``http2.stream``, not by h2."""
    return h2.config.H2Configuration(
        client_side=False,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


class H2Server:
    """h2's server side, as hasten configures it."""

    def __init__(self) -> None:
        self.machine = h2.connection.H2Connection(server_configuration())
        self.machine.initiate_connection()

    def receive(self, data: bytes) -> list[int]:
        """The ids of the requests ``data`` completes."""
        return [
            event.stream_id or 0
            for event in self.machine.receive_data(data)
            if isinstance(event, h2.events.RequestReceived)
        ]

    def respond(self, stream_id: int) -> None:
        self.machine.send_headers(stream_id, RESPONSE)
        self.machine.send_data(stream_id, b"Hello, world!", end_stream=True)

    def data_to_send(self) -> bytes:
        return self.machine.data_to_send()


class HastenServer:
    """hasten's own state machine, with the default limits."""

    def __init__(self) -> None:
        limits = settings_view(H2Limits, Config(app="bench.apps.plain:hello"))
        self.machine = H2Machine(limits, extended_connect=False, now=time.monotonic())
        self.machine.initiate_connection()

    def receive(self, data: bytes) -> list[int]:
        events = self.machine.receive_data(data, time.monotonic())
        return [event.stream_id for event in events if event.kind == REQUEST_EVENT]

    def respond(self, stream_id: int) -> None:
        self.machine.send_headers(stream_id, RESPONSE, end_stream=False)
        self.machine.send_data(stream_id, b"Hello, world!", end_stream=True)

    def data_to_send(self) -> bytes:
        return self.machine.data_to_send()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--streams", type=int, default=32, help="requests per batch (-m)")
    parser.add_argument("--machine", choices=("h2", "hasten"), default="h2")
    args = parser.parse_args()
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    server = H2Server() if args.machine == "h2" else HastenServer()
    client.initiate_connection()
    server.receive(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive(client.data_to_send())
    receiving = sending = 0.0
    for _ in range(args.batches):
        for _ in range(args.streams):
            stream_id = client.get_next_available_stream_id()
            client.send_headers(stream_id, REQUEST, end_stream=True)
        data = client.data_to_send()
        started = time.perf_counter()
        requests = server.receive(data)
        received = time.perf_counter()
        for stream_id in requests:
            server.respond(stream_id)
        answer = server.data_to_send()
        sending += time.perf_counter() - received
        receiving += received - started
        for event in client.receive_data(answer):
            if isinstance(event, h2.events.DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        server.receive(client.data_to_send())
    requests = args.batches * args.streams
    per_request = (receiving + sending) / requests * 1e6
    print(
        f"{args.machine} per request: receive {receiving / requests * 1e6:.1f} us, "
        f"respond {sending / requests * 1e6:.1f} us, total {per_request:.1f} us "
        f"(at most {1e6 / per_request:,.0f} req/s on one core for a server that costs nothing)"
    )


if __name__ == "__main__":
    main()
