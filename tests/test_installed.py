"""Smoke tests of the installed hasten, one per way of being served: the ``hasten`` and
``gunicorn`` commands of the Python under test (the installed wheel under ``make test``'s
wheel run), each driven by a real client."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import connect

from tests.harness import HastenProcess, console_script, hasten_process, run_client
from tests.protocols.h2client import H2Client
from tests.protocols.test_websocket_h2 import open_websocket
from tests.test_gunicorn import gunicorn

APP = "smoke_app:app"


def hasten(*args: str, **kwargs: Any) -> Any:
    """The installed ``hasten`` command serving the smoke app on a free port."""
    return hasten_process(APP, "--port", "0", *args, program=[console_script("hasten")], **kwargs)


def curl(*args: str) -> dict[str, Any]:
    """What the smoke app answered to ``curl ARGS``."""
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@pytest.fixture(scope="module")
def plain() -> Iterator[HastenProcess]:
    with hasten() as running:
        yield running


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the server's key and certificate chain, the CA that signed it)."""
    directory = tmp_path_factory.mktemp("smoke-certs")
    ca = trustme.CA()
    server, authority = directory / "server.pem", directory / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server))
    ca.cert_pem.write_to_path(str(authority))
    return server, authority


@pytest.mark.parametrize(
    ("curl_option", "version"),
    [
        ("--http1.1", "1.1"),
        ("--http2-prior-knowledge", "2"),
        ("--http2", "2"),  # over http:// this is the h2c upgrade (RFC 7540 §3.2)
    ],
)
def test_plain_http(plain: HastenProcess, curl_option: str, version: str) -> None:
    answer = curl(curl_option, plain.url + "/")
    assert answer["http_version"] == version
    assert answer["scheme"] == "http"


@pytest.mark.parametrize(("curl_option", "version"), [("--http1.1", "1.1"), ("--http2", "2")])
def test_tls_with_alpn(certificates: tuple[Path, Path], curl_option: str, version: str) -> None:
    server, authority = certificates
    with hasten("--ssl-certfile", str(server)) as running:
        answer = curl(curl_option, "--cacert", str(authority), f"https://127.0.0.1:{running.port}/")
    assert answer["http_version"] == version
    assert answer["scheme"] == "https"


def test_websocket_over_http11(plain: HastenProcess) -> None:
    async def echo() -> str | bytes:
        async with connect(f"ws://127.0.0.1:{plain.port}/ws") as websocket:
            await websocket.send("over HTTP/1.1")
            return await websocket.recv()

    assert run_client(echo()) == "over HTTP/1.1"


def test_websocket_over_http2(plain: HastenProcess) -> None:
    with H2Client(plain.host, plain.port).start() as client:
        websocket = open_websocket(client)
        websocket.send_text("over HTTP/2")
        assert websocket.receive_message() == "over HTTP/2"


def test_lifespan_runs_at_startup_and_at_shutdown() -> None:
    with hasten("--lifespan", "on") as running:
        answer = curl(running.url + "/")
        assert answer["started_by"] == answer["pid"]
        running.process.terminate()
        assert running.wait() == 0
    assert "Application shutdown complete." in running.output()


def test_two_workers_serve_the_port() -> None:
    with hasten("--workers", "2") as running:
        running.wait_for_line("Application startup complete.")
        workers = {curl("--http1.1", running.url + "/")["pid"] for _ in range(20)}
        running.process.terminate()
        assert running.wait() == 0
    assert running.process.pid not in workers
    assert running.output().count("Started server process") == 2


def test_gunicorn_worker_serves_the_app() -> None:
    command = console_script("gunicorn")
    assert Path(command).exists(), command
    with gunicorn(APP, program=command) as running:
        answer = curl("--http1.1", f"http://127.0.0.1:{running.port}/")
    assert answer["http_version"] == "1.1"
    assert answer["started_by"] == answer["pid"]
