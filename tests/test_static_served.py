"""Static files from a real hasten: curl and httpx over HTTP/1.1 and HTTP/2, hostile paths as
raw bytes, a file that shrinks mid-response, and a large file served with flat memory."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hasten.static_fields import format_http_date
from tests.harness import RawClient, RunningServer, hasten_process, request, run_server
from tests.static_support import HOSTILE_PATHS, TEXT, make_tree


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the path it was given, so a test sees what reached the app."""
    if scope["type"] != "http":
        return
    body = b"app saw " + scope["raw_path"]
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def public(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def server(public: Path) -> Iterator[RunningServer]:
    with run_server(
        echo_app,
        static_path_mount=[str(public)],
        static_path_dir_to_file="index.html",
        static_path_expires=600,
    ) as running:
        yield running


def curl(url: str, *args: str) -> tuple[int, dict[str, str], bytes]:
    """``curl ARGS URL``: the status, the (last) header values by lower-case name, the body."""
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "10", "-D", "-", *args, url],
        capture_output=True,
        check=True,
    )
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


# -- curl over HTTP/1.1 ---------------------------------------------------------------------


def test_curl_gets_the_file_with_cache_headers(server: RunningServer) -> None:
    status, headers, body = curl(f"{server.url}/static/a.txt")
    assert status == 200 and body == TEXT
    assert headers["cache-control"] == "max-age=600"
    assert "expires" in headers and "last-modified" in headers and "etag" in headers
    assert headers["content-type"] == "text/plain; charset=utf-8"


def test_curl_range(server: RunningServer) -> None:
    status, headers, body = curl(f"{server.url}/static/a.txt", "--range", "6-10")
    assert status == 206
    assert headers["content-range"] == f"bytes 6-10/{len(TEXT)}"
    assert body == TEXT[6:11]


def test_curl_unsatisfiable_range_is_416(server: RunningServer) -> None:
    status, headers, _ = curl(f"{server.url}/static/a.txt", "--range", "99999-")
    assert status == 416
    assert headers["content-range"] == f"bytes */{len(TEXT)}"


def test_curl_if_modified_since(server: RunningServer) -> None:
    later = format_http_date(time.time() + 60).decode()
    status, headers, body = curl(f"{server.url}/static/a.txt", "-z", later)
    assert status == 304 and body == b""
    assert headers["cache-control"] == "max-age=600"
    earlier = format_http_date(time.time() - 86400).decode()
    status, _, body = curl(f"{server.url}/static/a.txt", "-z", earlier)
    assert status == 200 and body == TEXT


def test_curl_if_none_match(server: RunningServer) -> None:
    _, headers, _ = curl(f"{server.url}/static/a.txt")
    status, again, body = curl(
        f"{server.url}/static/a.txt", "-H", f"If-None-Match: {headers['etag']}"
    )
    assert status == 304 and body == b""
    assert again["etag"] == headers["etag"]


def test_curl_if_range(server: RunningServer) -> None:
    _, headers, _ = curl(f"{server.url}/static/a.txt")
    url = f"{server.url}/static/a.txt"
    status, _, body = curl(url, "--range", "0-4", "-H", f"If-Range: {headers['etag']}")
    assert status == 206 and body == TEXT[:5]
    status, _, body = curl(url, "--range", "0-4", "-H", 'If-Range: "stale"')
    assert status == 200 and body == TEXT


def test_curl_compressed_gets_a_sibling_and_decodes_it(server: RunningServer) -> None:
    status, headers, body = curl(f"{server.url}/static/a.txt", "--compressed")
    assert status == 200 and body == TEXT
    assert headers["content-encoding"] == "br"  # curl offers br; it is the smaller coding
    assert headers["vary"] == "accept-encoding"
    status, headers, body = curl(f"{server.url}/static/only-gz.css", "--compressed")
    assert headers["content-encoding"] == "gzip" and body == b"body{}\n"
    assert headers["content-type"] == "text/css; charset=utf-8"


def test_curl_head(server: RunningServer) -> None:
    status, headers, body = curl(f"{server.url}/static/a.txt", "-I", "-o", "/dev/null")
    assert status == 200 and body == b""
    assert headers["content-length"] == str(len(TEXT))
    assert headers["accept-ranges"] == "bytes"


def test_curl_directory_index(server: RunningServer) -> None:
    status, headers, body = curl(f"{server.url}/static/sub/")
    assert status == 200 and body == b"<h1>index</h1>\n"
    assert headers["content-type"] == "text/html; charset=utf-8"


def test_requests_under_no_route_reach_the_app_untouched(server: RunningServer) -> None:
    for path in ("/", "/staticky/a.txt", "/other/static/a.txt"):
        status, _, body = curl(f"{server.url}{path}")
        assert status == 200 and body == b"app saw " + path.encode()


def test_other_methods_are_405(server: RunningServer) -> None:
    status, headers, _ = curl(f"{server.url}/static/a.txt", "-X", "POST", "-d", "x")
    assert status == 405 and headers["allow"] == "GET, HEAD"


# -- httpx over HTTP/2 ----------------------------------------------------------------------


@pytest.fixture
def h2_client() -> Iterator[httpx.Client]:
    # identity unless a test asks: httpx offers gzip, whose sibling has its own ETag
    headers = {"Accept-Encoding": "identity"}
    with httpx.Client(http1=False, http2=True, timeout=10, headers=headers) as client:
        yield client


def test_http2_serves_files_ranges_and_conditionals(
    server: RunningServer, h2_client: httpx.Client
) -> None:
    url = f"{server.url}/static/a.txt"
    whole = h2_client.get(url)
    assert whole.http_version == "HTTP/2"
    assert whole.status_code == 200 and whole.content == TEXT
    assert whole.headers["cache-control"] == "max-age=600"
    etag = whole.headers["etag"]
    part = h2_client.get(url, headers={"Range": "bytes=-5", "If-Range": etag})
    assert part.status_code == 206 and part.content == TEXT[-5:]
    assert part.headers["content-range"] == f"bytes {len(TEXT) - 5}-{len(TEXT) - 1}/{len(TEXT)}"
    assert h2_client.get(url, headers={"Range": "bytes=99999-"}).status_code == 416
    not_modified = h2_client.get(url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    later = format_http_date(time.time() + 60).decode()
    assert h2_client.get(url, headers={"If-Modified-Since": later}).status_code == 304
    head = h2_client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(TEXT))
    index = h2_client.get(f"{server.url}/static/sub/")
    assert index.content == b"<h1>index</h1>\n"
    assert h2_client.get(f"{server.url}/static/.env").status_code == 404
    assert h2_client.get(f"{server.url}/elsewhere").content == b"app saw /elsewhere"


def test_http2_gzip_sibling(server: RunningServer, h2_client: httpx.Client) -> None:
    response = h2_client.get(f"{server.url}/static/a.txt", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "accept-encoding"
    assert response.content == TEXT  # decoded by httpx


def test_http2_large_file(public: Path, server: RunningServer, h2_client: httpx.Client) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    (public / "big.bin").write_bytes(data)
    response = h2_client.get(f"{server.url}/static/big.bin")
    assert response.status_code == 200 and response.content == data
    ranged = h2_client.get(f"{server.url}/static/big.bin", headers={"Range": "bytes=70000-2000000"})
    assert ranged.status_code == 206 and ranged.content == data[70000:2000001]


def test_ranges_of_a_large_file_over_sendfile(public: Path, server: RunningServer) -> None:
    """Plain HTTP/1.1 sends the range from its offset with os.sendfile."""
    data = os.urandom(1024 * 1024 + 3)
    (public / "big.bin").write_bytes(data)
    url = f"{server.url}/static/big.bin"
    for wanted, expected in (
        ("100000-899999", data[100000:900000]),
        ("-70000", data[-70000:]),
        ("1048575-", data[1048575:]),
    ):
        status, headers, body = curl(url, "--range", wanted)
        assert status == 206 and body == expected, wanted
        assert headers["content-length"] == str(len(expected))
    assert curl(url)[2] == data


# -- hostile paths, as raw bytes ------------------------------------------------------------


def raw_get(server: RunningServer, target: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    with server.connect() as client:
        client.send(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        response = client.read_response()
    headers = [(name.lower(), value) for name, value in response.headers if name.lower() != "date"]
    return response.status, headers, response.body


@pytest.mark.parametrize("target", HOSTILE_PATHS, ids=lambda path: path.decode("latin-1"))
def test_hostile_paths_get_the_same_404_as_a_missing_file(
    server: RunningServer, target: bytes
) -> None:
    missing = raw_get(server, b"/static/no-such-file")
    assert missing[0] == 404
    assert raw_get(server, target) == missing


def test_a_raw_backslash_or_nul_never_reaches_a_file(server: RunningServer) -> None:
    for target in (b"/static/..\\outside.txt", b"/static/sub\\..\\..\\outside.txt"):
        status, _, body = raw_get(server, target)
        assert status in (400, 404) and b"outside" not in body


# -- a file that changes while it is sent ---------------------------------------------------


def test_a_file_truncated_mid_response_aborts_it_and_the_server_goes_on(
    public: Path, server: RunningServer, captured_errors: list[logging.LogRecord]
) -> None:
    big = public / "big.bin"
    size = 64 * 1024 * 1024
    with big.open("wb") as handle:
        handle.truncate(size)  # sparse
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((server.host, server.port))
    with RawClient(sock) as client:
        client.send(request("GET", "/static/big.bin"))
        client.sock.recv(4096)  # the response has started
        os.truncate(big, 1024 * 1024)
        received = 0
        while True:
            chunk = client.sock.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
        assert received < size
    status, _, body = curl(f"{server.url}/static/a.txt")
    assert status == 200 and body == TEXT
    assert any("could not be sent" in record.getMessage() for record in captured_errors)
    assert any(record.levelno == logging.WARNING for record in captured_errors)


def test_a_file_truncated_mid_response_resets_the_http2_stream_only(
    public: Path,
    server: RunningServer,
    h2_client: httpx.Client,
    captured_errors: list[logging.LogRecord],
) -> None:
    big = public / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    with (
        pytest.raises(httpx.RemoteProtocolError),
        h2_client.stream("GET", f"{server.url}/static/big.bin") as response,
    ):
        chunks = response.iter_raw()
        next(chunks)
        os.truncate(big, 1024 * 1024)
        for _ in chunks:
            pass
    # The same connection goes on serving.
    assert h2_client.get(f"{server.url}/static/a.txt").content == TEXT
    aborted = [record for record in captured_errors if "could not be sent" in record.getMessage()]
    assert len(aborted) == 1


# -- the command line, and memory -----------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_cli_flags_serve_a_64_mib_file_with_flat_memory(tmp_path: Path) -> None:
    public = make_tree(tmp_path)
    size = 64 * 1024 * 1024
    with (public / "big.bin").open("wb") as handle:
        handle.truncate(size)  # sparse: no disk, the reads still copy every byte
    with hasten_process(
        "smoke_app:app",
        "--port",
        "0",
        "--static-path-route",
        "/files",
        "--static-path-mount",
        str(public),
        "--static-path-route",
        "/pages/",
        "--static-path-mount",
        str(public / "sub"),
        "--static-path-expires",
        "0",
        "--static-path-dir-to-file",
        "index.html",
    ) as running:
        status, headers, body = curl(f"{running.url}/files/a.txt")
        assert status == 200 and body == TEXT
        assert "cache-control" not in headers and "expires" not in headers
        assert curl(f"{running.url}/pages/")[2] == b"<h1>index</h1>\n"
        assert curl(f"{running.url}/static/a.txt")[0] == 200  # no such route: the app's
        before = rss_kib(running.process.pid)
        result = subprocess.run(
            [
                "curl",
                "--silent",
                "--max-time",
                "60",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                f"{running.url}/files/big.bin",
            ],
            capture_output=True,
            check=True,
        )
        assert int(result.stdout) == size
        after = rss_kib(running.process.pid)
    # 64 MiB went through; the server may grow by buffers, not by the file.
    assert after - before < 16 * 1024, (before, after)
