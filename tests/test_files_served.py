"""Files sent by hasten (pathsend, zerocopysend) over real connections: ``os.sendfile`` on
plain HTTP/1.1 and chunked reads over TLS, keep-alive and pipelining after a file,
Starlette's ``FileResponse`` through httpx and curl, a 64 MiB file to a slow reader with flat
memory, the write timeout on a client that stops reading, and a file truncated mid-send."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trustme

from tests.apps.files_app import app as files_app
from tests.files_support import CONTENT, content_file
from tests.harness import RawClient, hasten_process, request, run_server
from tests.protocols.http1_apps import wait_for

LOCALHOST = "127.0.0.1"


@pytest.fixture
def file(tmp_path: Path) -> Path:
    return content_file(tmp_path)


class Certificates:
    def __init__(self, directory: Path) -> None:
        authority = trustme.CA()
        self.server_pem = directory / "server.pem"
        self.ca_pem = directory / "ca.pem"
        authority.issue_cert(LOCALHOST).private_key_and_cert_chain_pem.write_to_path(
            str(self.server_pem)
        )
        authority.cert_pem.write_to_path(str(self.ca_pem))

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


def pathsend_target(path: Path) -> str:
    return f"/pathsend?path={quote(str(path))}"


class SendfileCalls:
    """Counts the server's ``os.sendfile`` calls (it runs in this process)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = os.sendfile

        def counting(*args: Any) -> int:
            self.count += 1
            return real(*args)

        monkeypatch.setattr(os, "sendfile", counting)


# -- which way the bytes go ----------------------------------------------------------------------


def test_plain_http1_sends_the_file_with_os_sendfile(
    file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = SendfileCalls(monkeypatch)
    with run_server(files_app) as server, httpx.Client(base_url=server.url) as client:
        response = client.get(pathsend_target(file))
    assert response.content == CONTENT
    assert calls.count >= 1


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_sendfile_waits_for_a_full_socket_on_either_event_loop(tmp_path: Path, loop: str) -> None:
    """A file far larger than the socket buffers: sendfile meets EAGAIN and waits."""
    data = os.urandom(8 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    with (
        run_server(big_file_app, loop=loop) as server,
        stalled_client(server.port, f"/?{tmp_path / 'big.bin'}", receive_buffer=65536) as client,
    ):
        response = client.read_response()
    assert response.body == data


def test_http1_over_tls_reads_the_file_in_chunks(
    file: Path, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = SendfileCalls(monkeypatch)
    with (
        run_server(files_app, ssl_certfile=str(certs.server_pem), http="h1") as server,
        httpx.Client(
            base_url=f"https://{LOCALHOST}:{server.port}", verify=certs.client_context()
        ) as client,
    ):
        response = client.get(pathsend_target(file))
    assert response.http_version == "HTTP/1.1"
    assert response.content == CONTENT
    assert calls.count == 0


# -- the connection after a file -------------------------------------------------------------------


async def mixed_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/length``: a file with a Content-Length; ``/chunked``: a file and a body, chunked;
    ``/hello``: a plain body. The file's path is the query string."""
    if scope["type"] != "http":
        return
    path = scope["query_string"].decode()
    if scope["path"] == "/hello":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})
        return
    if scope["path"] == "/length":
        headers = [(b"content-length", b"%d" % len(CONTENT))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": path})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    with open(path, "rb") as handle:
        message = {"type": "http.response.zerocopysend", "file": handle, "more_body": True}
        await send(message)
    await send({"type": "http.response.body", "body": b"!"})


def test_keep_alive_and_pipelining_go_on_after_a_sendfile_response(file: Path) -> None:
    with run_server(mixed_app) as server, server.connect() as client:
        client.send(
            request("GET", f"/length?{file}")
            + request("GET", f"/chunked?{file}")
            + request("GET", "/hello")
        )
        first = client.read_response()
        second = client.read_response()
        third = client.read_response()
        assert (first.status, first.body) == (200, CONTENT)
        assert second.chunked and second.body == CONTENT + b"!"
        assert third.body == b"hello"
        client.send(request("GET", f"/length?{file}"))
        assert client.read_response().body == CONTENT


def test_a_http10_client_gets_a_file_with_a_content_length(file: Path) -> None:
    with run_server(mixed_app) as server, server.connect() as client:
        client.send(request("GET", f"/chunked?{file}", version="1.0"))
        data = client.read_all()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == CONTENT + b"!"  # close-delimited: HTTP/1.0 has no chunks


# -- Starlette's FileResponse ----------------------------------------------------------------------


def recording(messages: list[str]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def recorded_send(message: dict[str, Any]) -> None:
            messages.append(message["type"])
            await send(message)

        await files_app(scope, receive, recorded_send)

    return app


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
def test_starlette_file_response_uses_pathsend_through_httpx(file: Path, http2: bool) -> None:
    messages: list[str] = []
    with (
        run_server(recording(messages)) as server,
        httpx.Client(base_url=server.url, http1=not http2, http2=http2) as client,
    ):
        response = client.get(f"/starlette?path={quote(str(file))}")
        ranged = client.get(f"/starlette?path={quote(str(file))}", headers={"range": "bytes=5-9"})
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.content == CONTENT
    assert response.headers["content-length"] == str(len(CONTENT))
    assert "http.response.pathsend" in messages
    assert (ranged.status_code, ranged.content) == (206, CONTENT[5:10])


def test_starlette_file_response_through_curl(file: Path) -> None:
    with run_server(files_app) as server:
        url = f"{server.url}/starlette?path={quote(str(file))}"
        result = subprocess.run(
            ["curl", "--silent", "--show-error", "--max-time", "10", url, url],
            capture_output=True,
            check=True,
        )
    assert result.stdout == CONTENT + CONTENT


# -- memory, backpressure, the write timeout ----------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("carrier", ["http1", "http1-tls", "h2-tls"])
def test_a_64_mib_file_to_a_slow_reader_keeps_memory_flat(
    tmp_path: Path, certs: Certificates, carrier: str
) -> None:
    big = tmp_path / "big.bin"
    size = 64 * 1024 * 1024
    with big.open("wb") as handle:
        handle.truncate(size)  # sparse: no disk, the bytes are still read and sent
    tls = ["--ssl-certfile", str(certs.server_pem)] if carrier != "http1" else []
    with hasten_process("files_app:app", "--port", "0", *tls) as running:
        scheme = "https" if tls else "http"
        url = f"{scheme}://{LOCALHOST}:{running.port}{pathsend_target(big)}"
        before = rss_kib(running.process.pid)
        peak = before
        # curl reads at 32 MiB/s: the server, much faster, waits on it the whole time.
        version = "--http2" if carrier == "h2-tls" else "--http1.1"
        curl = subprocess.Popen(
            ["curl", "--silent", "--show-error", "--max-time", "60", "--limit-rate", "32M",
             "--cacert", str(certs.ca_pem), version, "-o", "/dev/null",
             "-w", "%{size_download}", url],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        while curl.poll() is None:
            peak = max(peak, rss_kib(running.process.pid))
            time.sleep(0.05)
        assert curl.stdout is not None
        assert int(curl.stdout.read()) == size
    assert peak - before < 16 * 1024, (before, peak)


async def big_file_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A 64 MiB file by pathsend (the path is the query string); records how send ended."""
    if scope["type"] != "http":
        return
    path = scope["query_string"].decode()
    headers = [(b"content-length", b"%d" % os.stat(path).st_size)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    try:
        await send({"type": "http.response.pathsend", "path": path})
    except OSError as exc:
        OUTCOMES.append(exc)
        raise
    OUTCOMES.append(None)


OUTCOMES: list[BaseException | None] = []


@pytest.fixture
def big_file(tmp_path: Path) -> Iterator[Path]:
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    OUTCOMES.clear()
    yield big


def stalled_client(
    port: int, target: str, tls: ssl.SSLContext | None = None, receive_buffer: int = 4096
) -> RawClient:
    """A client that asks for a file and reads nothing yet, with a small receive buffer (set
    before connecting: a window shrunk later makes TCP crawl)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect((LOCALHOST, port))
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=LOCALHOST)
    client = RawClient(sock)
    client.send(request("GET", target))
    return client


def test_the_write_timeout_closes_a_client_that_stops_reading_a_file(
    big_file: Path, captured_errors: list[logging.LogRecord]
) -> None:
    with run_server(big_file_app, timeout_response_write=0.5) as server:
        with stalled_client(server.port, f"/?{big_file}") as client:
            wait_for(lambda: OUTCOMES, timeout=10)
            received = len(client.read_all())
        assert received < 64 * 1024 * 1024
        assert isinstance(OUTCOMES[0], OSError)
        assert any("stopped reading" in record.getMessage() for record in captured_errors)
        # The server goes on.
        with httpx.Client(base_url=server.url) as http:
            assert http.head(f"/?{big_file}").status_code == 200


@pytest.mark.parametrize("tls", [False, True], ids=["http1", "http1-tls"])
def test_a_file_truncated_mid_send_aborts_the_response_with_one_log_line(
    big_file: Path, certs: Certificates, captured_errors: list[logging.LogRecord], tls: bool
) -> None:
    settings = {"ssl_certfile": str(certs.server_pem), "http": "h1"} if tls else {}
    with run_server(big_file_app, **settings) as server:
        client = stalled_client(
            server.port, f"/?{big_file}", certs.client_context() if tls else None
        )
        with client:
            client.sock.recv(4096)  # the response has started
            os.truncate(big_file, 1024 * 1024)
            received = len(client.read_all(timeout=10))
        assert received < 64 * 1024 * 1024
        wait_for(lambda: OUTCOMES)
    aborted = [record for record in captured_errors if "could not be sent" in record.getMessage()]
    assert len(aborted) == 1
    assert aborted[0].levelno == logging.WARNING
    assert not [record for record in captured_errors if record.levelno >= logging.ERROR]


def test_the_server_goes_on_after_a_client_leaves_mid_file(big_file: Path) -> None:
    with run_server(big_file_app) as server:
        with stalled_client(server.port, f"/?{big_file}") as client:
            client.sock.recv(4096)
        wait_for(lambda: OUTCOMES)
        assert isinstance(OUTCOMES[0], OSError)
        with httpx.Client(base_url=server.url) as http:
            response = http.get(f"/?{big_file}", timeout=30)
        assert response.status_code == 200 and len(response.content) == 64 * 1024 * 1024


def test_a_client_resetting_mid_sendfile_is_a_disconnect_not_an_app_error(
    big_file: Path, captured_errors: list[logging.LogRecord]
) -> None:
    # A reader that keeps up, then resets: sendfile meets the broken socket before the
    # loop has reported the connection lost.
    with run_server(big_file_app) as server:
        for _ in range(5):
            with socket.create_connection((LOCALHOST, server.port), timeout=10) as sock:
                sock.sendall(request("GET", f"/?{big_file}"))
                received = 0
                while received < 8 * 1024 * 1024:
                    received += len(sock.recv(1024 * 1024))
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
        wait_for(lambda: len(OUTCOMES) == 5)
    assert all(isinstance(outcome, OSError) for outcome in OUTCOMES)
    errors = [record for record in captured_errors if record.levelno >= logging.ERROR]
    assert errors == [], [record.getMessage() for record in errors]
