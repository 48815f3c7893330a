"""File-download load that never touches the bytes it downloads: the client must not be
what saturates first.

A load generator that reads a response into its own memory (wrk does) copies every byte
once more on the client's core. For large files that copy is the whole cost of the run,
and on one machine it is worse for a server that sends with ``sendfile``: the client then
reads the file's pages out of memory itself, where a server that copies through a buffer
has already pulled them into the cache the cores share. Here each connection reads only
the response head (and chunk-size lines) with ``recv``; the body goes with ``os.splice``
from the socket into a pipe and from the pipe into ``/dev/null``, so the kernel hands
pages along and nobody reads them, whichever way the server sent them. One thread per
connection, keep-alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import statistics
import threading
import time

from bench.measure import CpuClock, LoadResult

# The pipe between socket and /dev/null: larger means fewer splice calls per file.
_PIPE_SIZE = 1024 * 1024
_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)


class _Downloads:
    """What the connections have done: completion times and each file's latency."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.finished: list[tuple[float, float]] = []  # (when, seconds it took)
        self.errors = 0
        self.stop = threading.Event()


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The response head (status line and fields) and the body bytes that came with it."""
    received = b""
    while _HEAD_END not in received:
        received += _recv(sock, 4096)
    head, _, early_body = received.partition(_HEAD_END)
    return head, early_body


def _recv(sock: socket.socket, size: int) -> bytes:
    chunk = sock.recv(size)
    if not chunk:
        raise ConnectionError("the server closed the connection in a response")
    return chunk


def _discard(sock: socket.socket, count: int, pipe: tuple[int, int], sink: int) -> None:
    """Move ``count`` bytes from the socket to ``sink`` through ``pipe``, without copying."""
    read_end, write_end = pipe
    while count:
        moved = os.splice(sock.fileno(), write_end, min(count, _PIPE_SIZE))
        if not moved:
            raise ConnectionError("the server closed the connection in a response body")
        count -= moved
        while moved:
            moved -= os.splice(read_end, sink, moved)


def _discard_chunked(
    sock: socket.socket, buffered: bytes, pipe: tuple[int, int], sink: int
) -> None:
    """A chunked body (RFC 9112 §7.1): only its lines are read, and no further than their
    ends; each chunk's data is spliced away. ``buffered``: body bytes already read."""
    while True:
        line, buffered = _read_line(sock, buffered)
        size = int(line.split(b";")[0], 16)
        if not size:
            while line:  # the trailer section ends with an empty line
                line, buffered = _read_line(sock, buffered)
            return
        left = size + 2  # the data and its CRLF
        taken = min(len(buffered), left)
        buffered = buffered[taken:]
        left -= taken
        if left > 2:
            _discard(sock, left - 2, pipe, sink)
            left = 2
        while left:
            left -= len(_recv(sock, left))


def _read_line(sock: socket.socket, buffered: bytes) -> tuple[bytes, bytes]:
    """The next line (without its CRLF) and what is left of ``buffered`` after it; reads
    from the socket only up to the line's end, so the bytes after it stay there."""
    while b"\r\n" not in buffered:
        peeked = sock.recv(64, socket.MSG_PEEK)
        if not peeked:
            raise ConnectionError("the server closed the connection in a response")
        end = (buffered[-1:] + peeked).find(b"\r\n")
        wanted = len(peeked) if end < 0 else end + 2 - len(buffered[-1:])
        buffered += _recv(sock, wanted)
    line, _, rest = buffered.partition(b"\r\n")
    return line, rest


def _connection(port: int, path: str, downloads: _Downloads) -> None:
    request = b"GET %b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode()
    pipe = read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # a smaller pipe only costs more calls
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.settimeout(None)  # splice needs a blocking socket, which a timeout is not
            while not downloads.stop.is_set():
                started = time.perf_counter()
                sock.sendall(request)
                head, early = _read_head(sock)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise ConnectionError(f"unexpected response head {head[:60]!r}")
                length = _CONTENT_LENGTH.search(head)
                if length is not None:
                    _discard(sock, int(length.group(1)) - len(early), pipe, sink)
                elif _CHUNKED.search(head):
                    _discard_chunked(sock, early, pipe, sink)
                else:
                    raise ConnectionError(f"a response without a length: {head[:60]!r}")
                done = time.perf_counter()
                with downloads.lock:
                    downloads.finished.append((done, done - started))
    except OSError:
        with downloads.lock:
            downloads.errors += 1
    finally:
        os.close(sink)
        os.close(read_end)
        os.close(write_end)


def run(port: int, path: str, connections: int, warmup: float, duration: float) -> LoadResult:
    """Files downloaded per second over ``duration``, after ``warmup`` on the same
    keep-alive connections; p50/p99 are one file's download time."""
    downloads = _Downloads()
    threads = [
        threading.Thread(target=_connection, args=(port, path, downloads), daemon=True)
        for _ in range(connections)
    ]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    clock = CpuClock.of_self()
    start = time.perf_counter()
    time.sleep(duration)
    end = time.perf_counter()
    client_cpu = clock.share()
    downloads.stop.set()
    for thread in threads:
        thread.join(timeout=30)
    with downloads.lock:
        measured = [took for when, took in downloads.finished if start <= when < end]
        errors = downloads.errors
    if not measured:
        return LoadResult(rate=0.0, errors=errors, client_cpu=client_cpu)
    cuts = statistics.quantiles(measured, n=100, method="inclusive") if len(measured) > 1 else []
    return LoadResult(
        rate=len(measured) / (end - start),
        p50_ms=statistics.median(measured) * 1000,
        p99_ms=(cuts[98] if cuts else measured[0]) * 1000,
        requests=len(measured),
        errors=errors,
        client_cpu=client_cpu,
    )
