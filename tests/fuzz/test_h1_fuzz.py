"""Property-based fuzzing of the HTTP/1.1 request path over a real socket.

Whatever bytes a client sends, the server answers only with well-formed responses, never
lets an exception escape (nothing is logged at ERROR), and keeps serving. The examples per
test come from a hypothesis profile: ``HASTEN_FUZZ_PROFILE=long`` (``make fuzz``) runs many
more than the default ``ci`` profile.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conformance.recording_app import RecordingApp
from tests.harness import RunningServer, run_server

settings.register_profile(
    "ci",
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZ = settings.get_profile(os.environ.get("HASTEN_FUZZ_PROFILE", "ci"))

TEMPLATES = [
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET http://a.example/p HTTP/1.1\r\nHost: b\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
]
# Fragments that matter to HTTP/1.1 framing, spliced into valid requests.
TOKENS = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b" ",
    b"\t",
    b":",
    b",",
    b";",
    b"\x0b",
    b"\x85",
    b"\xff",
    b"0",
    b"ffffffffffffffffffff",
    b"Content-Length: 3\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Host: x\r\n",
    b" folded\r\n",
    b"0\r\n\r\n",
    b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "flip"]))
        if action == "insert":
            data[position:position] = draw(st.sampled_from(TOKENS) | st.binary(max_size=8))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif action == "replace" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif action == "duplicate":
            end = position + draw(st.integers(1, 40))
            data[end:end] = data[position:end]
        elif action == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


_TCHAR = st.sampled_from(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_ANY_BYTE = st.integers(0, 255)


@st.composite
def generated_requests(draw: st.DrawFn) -> bytes:
    """Requests built from parts, each part usually valid and sometimes anything."""
    method = draw(
        st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS"])
        | st.binary(max_size=8)
    )
    target = draw(
        st.sampled_from([b"/", b"/p?q=1", b"*", b"http://h/p"]) | st.binary(min_size=1, max_size=30)
    )
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]) | st.binary(max_size=10))
    fields = []
    for _ in range(draw(st.integers(0, 6))):
        name = bytes(draw(st.lists(_TCHAR | _ANY_BYTE, min_size=0, max_size=12)))
        value = draw(st.binary(max_size=20) | st.sampled_from([b"chunked", b"5", b"close", b"t"]))
        name = draw(
            st.sampled_from([name, b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection"])
        )
        fields.append(name + draw(st.sampled_from([b": ", b":", b" : "])) + value + b"\r\n")
    body = draw(st.binary(max_size=40))
    return method + b" " + target + b" " + version + b"\r\n" + b"".join(fields) + b"\r\n" + body


_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [^\r\n]*")


def split_responses(data: bytes, *, head_first: bool = False) -> list[int]:
    """The statuses of the well-formed responses making up ``data``, exactly; else fail.

    ``head_first``: the first request was a HEAD, so its response has no body.
    """
    statuses = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        assert separator, f"unterminated head: {head[:200]!r}"
        status_line, *lines = head.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(status_line)
        assert match, status_line
        status = int(match[1])
        statuses.append(status)
        fields = {}
        for line in lines:
            name, colon, value = line.partition(b":")
            assert colon and re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name), line
            assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value), line
            fields[name.lower()] = value.strip()
        if status < 200 or status in (204, 304):
            continue
        if head_first and len(statuses) == 1 and status < 400:
            # The server's own error responses keep their short body even for HEAD: the
            # connection closes right after them, so the framing stays unambiguous.
            continue
        if b"content-length" in fields:
            length = int(fields[b"content-length"])
            assert len(data) >= length, (status, length, len(data))
            data = data[length:]
        elif fields.get(b"transfer-encoding") == b"chunked":
            while True:
                size_line, separator, data = data.partition(b"\r\n")
                assert separator and re.fullmatch(rb"[0-9a-f]+", size_line), size_line
                size = int(size_line, 16)
                assert data[size : size + 2] == b"\r\n"
                data = data[size + 2 :]
                if size == 0:
                    break
        else:
            data = b""  # delimited by the close
    return statuses


class ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[tuple[RunningServer, RecordingApp, ErrorRecords]]:
    errors = ErrorRecords()
    loggers = [logging.getLogger(name) for name in ("hasten.error", "asyncio")]
    for logger in loggers:
        logger.addHandler(errors)
    app = RecordingApp()
    try:
        with run_server(app, http="h1", log_level="error", timeout_request_header=2.0) as server:
            yield server, app, errors
    finally:
        for logger in loggers:
            logger.removeHandler(errors)


def exchange(server: RunningServer, data: bytes, pieces: int) -> bytes:
    """Send ``data`` in ``pieces`` writes, end the sending side, read until the close."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    received = b""
    try:
        step = max(1, len(data) // pieces)
        try:
            for start in range(0, len(data), step):
                sock.sendall(data[start : start + step])
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused the request and closed before reading all of it
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    finally:
        sock.close()
    return received


def check_exchange(
    fuzz_server: tuple[RunningServer, RecordingApp, ErrorRecords], data: bytes, pieces: int
) -> None:
    server, _, errors = fuzz_server
    statuses = split_responses(exchange(server, data, pieces), head_first=data.startswith(b"HEAD "))
    assert all(
        status in {100, 200, 400, 404, 405, 408, 413, 414, 426, 429, 431, 501, 505}
        for status in statuses
    ), statuses
    assert not errors.records, [record.getMessage() for record in errors.records]


@FUZZ
@given(data=mutated_requests(), pieces=st.integers(1, 4))
def test_mutated_requests_get_well_formed_answers(
    fuzz_server: tuple[RunningServer, RecordingApp, ErrorRecords], data: bytes, pieces: int
) -> None:
    check_exchange(fuzz_server, data, pieces)


@FUZZ
@given(data=generated_requests(), pieces=st.integers(1, 3))
def test_generated_requests_get_well_formed_answers(
    fuzz_server: tuple[RunningServer, RecordingApp, ErrorRecords], data: bytes, pieces: int
) -> None:
    check_exchange(fuzz_server, data, pieces)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_get_well_formed_answers(
    fuzz_server: tuple[RunningServer, RecordingApp, ErrorRecords], data: bytes
) -> None:
    check_exchange(fuzz_server, data, 1)


def test_server_still_serves_after_the_fuzzing(
    fuzz_server: tuple[RunningServer, RecordingApp, ErrorRecords],
) -> None:
    server, app, errors = fuzz_server
    statuses = split_responses(exchange(server, b"GET /alive HTTP/1.1\r\nHost: t\r\n\r\n", 1))
    assert statuses == [200]
    assert app.requests[-1].path == "/alive"
    assert not errors.records
