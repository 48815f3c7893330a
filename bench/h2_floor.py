"""The h2 library's own cost per request, with no server around it: ``python -m bench.h2_floor``.

A server built on h2 cannot serve HTTP/2 faster than h2 parses a request and serialises a
response. This feeds a server-side ``h2.connection.H2Connection`` (configured as hasten's:
no header validation or normalisation by h2) the bytes of ``h2load -m32``-like batches from
a client-side one, answers each stream with hello's response, and reports the microseconds
per request spent in ``receive_data`` and in ``send_headers`` + ``send_data`` +
``data_to_send``. Single process, no sockets, no event loop.
"""

from __future__ import annotations

import argparse
import time

import h2.config
import h2.connection
import h2.events

from hasten.protocols.http2.connection import server_configuration

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--streams", type=int, default=32, help="requests per batch (-m)")
    args = parser.parse_args()
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    server = h2.connection.H2Connection(server_configuration())
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    receiving = sending = 0.0
    for _ in range(args.batches):
        for _ in range(args.streams):
            stream_id = client.get_next_available_stream_id()
            client.send_headers(stream_id, REQUEST, end_stream=True)
        data = client.data_to_send()
        started = time.perf_counter()
        events = server.receive_data(data)
        received = time.perf_counter()
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                server.send_headers(event.stream_id, RESPONSE)
                server.send_data(event.stream_id, b"Hello, world!", end_stream=True)
        answer = server.data_to_send()
        sending += time.perf_counter() - received
        receiving += received - started
        for event in client.receive_data(answer):
            if isinstance(event, h2.events.DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        server.receive_data(client.data_to_send())
    requests = args.batches * args.streams
    per_request = (receiving + sending) / requests * 1e6
    print(
        f"h2 per request: receive {receiving / requests * 1e6:.1f} us, "
        f"respond {sending / requests * 1e6:.1f} us, total {per_request:.1f} us "
        f"(at most {1e6 / per_request:,.0f} req/s on one core for a server that costs nothing)"
    )


if __name__ == "__main__":
    main()
