"""The benchmark's file-download client: bodies are spliced away to the byte, whatever
their framing, and the next response on the connection is left where it was."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from bench import file_load

NEXT = b"HTTP/1.1 200 OK\r\n"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    with client, server:
        yield client, server


def _splice_away(
    client: socket.socket, server: socket.socket, wire: bytes, chunked: bool, early: bytes = b""
) -> bytes:
    """Send ``wire`` (then NEXT) from ``server``; discard one body on ``client``; return what
    the client can read after it."""
    sender = threading.Thread(target=server.sendall, args=(wire + NEXT,))
    sender.start()
    pipe = os.pipe()
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        if chunked:
            file_load._discard_chunked(client, early, pipe, sink)
        else:
            file_load._discard(client, len(wire), pipe, sink)
    finally:
        os.close(sink)
        os.close(pipe[0])
        os.close(pipe[1])
    sender.join()
    return client.recv(len(NEXT))


@pytest.mark.parametrize("size", [1, 65536, 3 * 1024 * 1024 + 7])
def test_a_sized_body_is_discarded_to_the_byte(
    pair: tuple[socket.socket, socket.socket], size: int
) -> None:
    client, server = pair
    assert _splice_away(client, server, os.urandom(size), chunked=False) == NEXT


@pytest.mark.parametrize("chunks", [[1], [5, 70000, 3], [1024 * 1024, 1], [2, 2, 2, 2]], ids=str)
@pytest.mark.parametrize("trailer", [b"", b"x-checksum: 1\r\n"])
def test_a_chunked_body_is_discarded_to_the_byte(
    pair: tuple[socket.socket, socket.socket], chunks: list[int], trailer: bytes
) -> None:
    client, server = pair
    wire = b"".join(b"%x;ext=1\r\n%b\r\n" % (size, b"z" * size) for size in chunks)
    wire += b"0\r\n" + trailer + b"\r\n"
    # Some of the body may have come with the head, as it does off the wire.
    early, rest = wire[:4], wire[4:]
    assert _splice_away(client, server, rest, chunked=True, early=early) == NEXT


def test_a_closed_connection_in_a_body_is_an_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    server.sendall(b"abc")
    server.shutdown(socket.SHUT_WR)
    pipe = os.pipe()
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        with pytest.raises(ConnectionError):
            file_load._discard(client, 10, pipe, sink)
    finally:
        os.close(sink)
        os.close(pipe[0])
        os.close(pipe[1])
