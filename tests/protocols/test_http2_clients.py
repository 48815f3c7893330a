"""Real HTTP/2 clients against hasten — nghttp, h2load, httpx and curl, over prior knowledge,
the h2c upgrade and TLS with ALPN h2. Every response is checked whole, and where a client
multiplexes, the app's record of each scope proves all its requests shared one connection."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import re
import ssl
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import RunningServer, run_client, run_server
from tests.protocols.h2client import ensure_h2load
from tests.protocols.http1_apps import read_body
from tests.tls_support import Certificate

CHUNK = 65536
MIB = 1 << 20


@functools.cache
def payload(size: int) -> bytes:
    """``size`` bytes that are the same on every call and compress poorly."""
    return random.Random(size).randbytes(size)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ScopeLog:
    """The app for these tests, which records (http_version, client port) of each request.

    ``/bytes?N`` answers ``payload(N)`` in parts, ``/echo`` answers the length and sha256 of
    the body it read, any other path answers its method and path.
    """

    scopes: list[tuple[str, int]] = field(default_factory=list)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.scopes.append((scope["http_version"], scope["client"][1]))
        body, _ = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/bytes":
            data = payload(int(scope["query_string"]))
            for start in range(0, len(data), CHUNK):
                part = data[start : start + CHUNK]
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["path"] == "/echo":
            answer = f"{len(body)} {digest(body)}"
        else:
            answer = f"{scope['method']} {scope['path']}"
        await send({"type": "http.response.body", "body": answer.encode()})

    def connections(self) -> set[int]:
        """The client ports the requests came from, after checking they were all HTTP/2."""
        assert {version for version, _ in self.scopes} == {"2"}, self.scopes
        return {port for _, port in self.scopes}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return Certificate(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def scope_log() -> ScopeLog:
    return ScopeLog()


@pytest.fixture
def h2c_server(scope_log: ScopeLog) -> Iterator[RunningServer]:
    with run_server(scope_log.app, access_log=False) as server:
        yield server


@pytest.fixture
def tls_server(scope_log: ScopeLog, certs: Certificate) -> Iterator[str]:
    """The https:// origin of a hasten serving ``scope_log.app``."""
    with run_server(scope_log.app, access_log=False, ssl_certfile=str(certs.server_pem)) as server:
        yield f"https://127.0.0.1:{server.port}"


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


# -- nghttp ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nghttp() -> str:
    """nghttp, which comes in h2load's Debian package (nghttp2-client)."""
    return str(Path(ensure_h2load()).with_name("nghttp"))


@dataclass
class NghttpStream:
    status: str = ""
    data_length: int = 0
    ended: bool = False


FRAME_RECEIVED = re.compile(
    r"recv (DATA|HEADERS) frame <length=(\d+), flags=0x([0-9a-f]+), stream_id=(\d+)>"
)
STATUS_RECEIVED = re.compile(r"recv \(stream_id=(\d+)\) :status: (\d+)")


def received_streams(verbose_log: str) -> dict[int, NghttpStream]:
    """The responses in nghttp's ``-v`` frame log, by stream: status, DATA bytes, END_STREAM."""
    streams: defaultdict[int, NghttpStream] = defaultdict(NghttpStream)
    for stream_id, status in STATUS_RECEIVED.findall(verbose_log):
        streams[int(stream_id)].status = status
    for kind, length, flags, stream_id in FRAME_RECEIVED.findall(verbose_log):
        stream = streams[int(stream_id)]
        if kind == "DATA":
            stream.data_length += int(length)
        stream.ended |= bool(int(flags, 16) & 0x1)  # RFC 9113 §6.1, §6.2: END_STREAM
    return dict(streams)


def assert_no_errors(verbose_log: str) -> None:
    assert "recv RST_STREAM" not in verbose_log
    assert "recv GOAWAY" not in verbose_log
    assert "[ERROR]" not in verbose_log


def test_nghttp_multiplexes_requests_on_one_prior_knowledge_connection(
    nghttp: str, h2c_server: RunningServer, scope_log: ScopeLog
) -> None:
    log = run(nghttp, "-nv", "-m", "3", f"{h2c_server.url}/a", f"{h2c_server.url}/bytes?100000")
    assert_no_errors(log)
    streams = received_streams(log)
    assert len(streams) == 6
    assert all(stream.status == "200" and stream.ended for stream in streams.values())
    lengths = sorted(stream.data_length for stream in streams.values())
    assert lengths == [len("GET /a")] * 3 + [100000] * 3
    assert len(scope_log.connections()) == 1
    assert len(scope_log.scopes) == 6


def test_nghttp_posts_data_and_reads_the_answer(
    nghttp: str, h2c_server: RunningServer, tmp_path: Path
) -> None:
    # Larger than the initial 65535-byte windows: the upload waits on WINDOW_UPDATEs.
    upload = tmp_path / "upload"
    upload.write_bytes(payload(300_000))
    output = run(nghttp, "-v", "-d", str(upload), f"{h2c_server.url}/echo")
    assert_no_errors(output)
    answer = f"300000 {digest(payload(300_000))}"
    # Without -n, nghttp prints the body just before the log line of its DATA frame.
    assert f"{answer}[" in output
    (stream,) = received_streams(output).values()
    assert stream == NghttpStream(status="200", data_length=len(answer), ended=True)


def test_nghttp_negotiates_h2_over_tls_and_multiplexes(
    nghttp: str, tls_server: str, scope_log: ScopeLog
) -> None:
    # -y: the test authority is not in the system store; verifying is not what is tested.
    log = run(nghttp, "-nvy", "-m", "4", f"{tls_server}/bytes?200000")
    assert "The negotiated protocol: h2" in log
    assert_no_errors(log)
    streams = received_streams(log)
    assert len(streams) == 4
    expected = NghttpStream(status="200", data_length=200000, ended=True)
    assert all(stream == expected for stream in streams.values())
    assert len(scope_log.connections()) == 1


def test_nghttp_upgrades_from_http11_and_gets_stream_1(
    nghttp: str, h2c_server: RunningServer, scope_log: ScopeLog
) -> None:
    log = run(nghttp, "-nvu", f"{h2c_server.url}/upgraded")
    assert "HTTP/1.1 101 Switching Protocols" in log
    assert "HTTP Upgrade success" in log
    assert_no_errors(log)
    assert received_streams(log) == {
        1: NghttpStream(status="200", data_length=len("GET /upgraded"), ended=True)
    }
    assert len(scope_log.connections()) == 1


def test_nghttp_upgrade_with_data_posts_on_the_upgraded_connection(
    nghttp: str, h2c_server: RunningServer, scope_log: ScopeLog, tmp_path: Path
) -> None:
    # With -d, nghttp upgrades with `OPTIONS *` (stream 1), then POSTs on a new stream.
    upload = tmp_path / "upload"
    upload.write_bytes(payload(100_000))
    output = run(nghttp, "-vu", "-d", str(upload), f"{h2c_server.url}/echo")
    assert "HTTP/1.1 101 Switching Protocols" in output
    assert_no_errors(output)
    answer = f"100000 {digest(payload(100_000))}"
    assert f"{answer}[" in output
    streams = received_streams(output)
    assert streams.pop(1) == NghttpStream(status="200", data_length=len("OPTIONS *"), ended=True)
    assert list(streams.values()) == [
        NghttpStream(status="200", data_length=len(answer), ended=True)
    ]
    assert len(scope_log.connections()) == 1


def test_nghttp_with_a_1023_byte_stream_window_downloads_1_mib(
    nghttp: str, h2c_server: RunningServer
) -> None:
    # -w 10: SETTINGS_INITIAL_WINDOW_SIZE 2^10-1; nghttp reopens both windows after each frame.
    log = run(nghttp, "-nv", "-w", "10", f"{h2c_server.url}/bytes?{MIB}")
    assert_no_errors(log)
    assert list(received_streams(log).values()) == [
        NghttpStream(status="200", data_length=MIB, ended=True)
    ]


# -- h2load ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def h2load() -> str:
    return ensure_h2load()


def test_h2load_posts_bodies_over_tls_with_no_failures(
    h2load: str, tls_server: str, scope_log: ScopeLog, tmp_path: Path
) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(payload(20_000))
    report = run(h2load, "-n", "200", "-c", "2", "-m", "8", "-d", str(upload), f"{tls_server}/echo")
    assert "Application protocol: h2" in report
    assert "200 succeeded, 0 failed, 0 errored, 0 timeout" in report, report
    assert "status codes: 200 2xx" in report, report
    assert len(scope_log.connections()) == 2


def test_h2load_receives_every_byte_of_1_mib_responses(
    h2load: str, h2c_server: RunningServer
) -> None:
    report = run(h2load, "-c", "4", "-m", "4", "-n", "64", f"{h2c_server.url}/bytes?{MIB}")
    assert "64 succeeded, 0 failed, 0 errored, 0 timeout" in report, report
    data = re.search(r"traffic: .*\((\d+)\) data", report)
    assert data is not None, report
    assert int(data.group(1)) == 64 * MIB


# -- httpx -------------------------------------------------------------------------------------


def tls_client(certs: Certificate) -> httpx.AsyncClient:
    verify = ssl.create_default_context(cafile=str(certs.ca_pem))
    return httpx.AsyncClient(http1=False, http2=True, verify=verify, timeout=20)


def test_httpx_sends_concurrent_requests_on_one_tls_connection(
    tls_server: str, scope_log: ScopeLog, certs: Certificate
) -> None:
    # More than SETTINGS_MAX_CONCURRENT_STREAMS (100): httpx queues the rest on the connection.
    count = 150

    async def fetch_all() -> list[httpx.Response]:
        async with tls_client(certs) as client:
            requests = [client.get(f"{tls_server}/n{index}") for index in range(count)]
            return await asyncio.gather(*requests)

    responses = run_client(fetch_all())
    assert all(response.http_version == "HTTP/2" for response in responses)
    assert [response.text for response in responses] == [f"GET /n{index}" for index in range(count)]
    assert len(scope_log.connections()) == 1


def test_httpx_streams_an_upload_over_tls(tls_server: str, certs: Certificate) -> None:
    data = payload(MIB)

    async def parts() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 10_000):
            yield data[start : start + 10_000]

    async def upload() -> httpx.Response:
        async with tls_client(certs) as client:
            return await client.post(f"{tls_server}/echo", content=parts())

    response = run_client(upload())
    assert response.http_version == "HTTP/2"
    assert response.text == f"{MIB} {digest(data)}"


def test_httpx_downloads_a_large_body_over_tls(tls_server: str, certs: Certificate) -> None:
    async def download() -> tuple[str, bytes]:
        received = bytearray()
        async with (
            tls_client(certs) as client,
            client.stream("GET", f"{tls_server}/bytes?{4 * MIB}") as response,
        ):
            async for part in response.aiter_bytes():
                received += part
        return response.http_version, bytes(received)

    version, received = run_client(download())
    assert version == "HTTP/2"
    assert digest(received) == digest(payload(4 * MIB))


# -- curl --------------------------------------------------------------------------------------


def curl_version() -> tuple[int, ...]:
    version = run("curl", "--version").split()[1]
    return tuple(int(part) for part in version.split(".")[:2])


def curl(*arguments: str) -> list[str]:
    """curl's ``HTTP-version status`` line for each transfer."""
    return run("curl", "-sS", "-w", "%{http_version} %{http_code}\n", *arguments).splitlines()


@pytest.mark.parametrize("mode", ["prior-knowledge", "upgrade", "tls"])
def test_curl_parallel_transfers_share_one_connection(
    mode: str, scope_log: ScopeLog, certs: Certificate, tmp_path: Path
) -> None:
    if mode == "prior-knowledge" and curl_version() < (8, 0):
        # curl#10634, fixed in 8.0.0: curl < 8 fails every transfer that reuses a
        # prior-knowledge connection with "Error in the HTTP2 framing layer", whatever the
        # server (seen against granian too) and before sending a byte of it.
        pytest.skip("curl < 8.0 cannot reuse a prior-knowledge connection (curl#10634)")
    options = {
        "prior-knowledge": ["--http2-prior-knowledge"],
        "upgrade": ["--http2"],
        "tls": ["--cacert", str(certs.ca_pem)],
    }[mode]
    settings: dict[str, Any] = {"access_log": False}
    if mode == "tls":
        settings["ssl_certfile"] = str(certs.server_pem)
    with run_server(scope_log.app, **settings) as server:
        origin = f"{'https' if mode == 'tls' else 'http'}://127.0.0.1:{server.port}"
        transfers = []
        for index in range(8):
            transfers += ["-o", str(tmp_path / f"{index}"), f"{origin}/p{index}"]
        assert curl("--parallel", *options, *transfers) == ["2 200"] * 8
    assert [(tmp_path / f"{index}").read_text() for index in range(8)] == [
        f"GET /p{index}" for index in range(8)
    ]
    assert len(scope_log.connections()) == 1


def test_curl_downloads_8_mib_over_tls_intact(
    tls_server: str, certs: Certificate, tmp_path: Path
) -> None:
    target = tmp_path / "download"
    url = f"{tls_server}/bytes?{8 * MIB}"
    assert curl("--cacert", str(certs.ca_pem), "-o", str(target), url) == ["2 200"]
    assert digest(target.read_bytes()) == digest(payload(8 * MIB))
