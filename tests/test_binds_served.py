"""Several listeners at once (``--bind``, ``--insecure-bind``): every one served, each
connection's scope naming the listener it came in on, every one named in the log."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from hasten.server import Server
from tests.apps.cli_target import app as facts_app
from tests.harness import hasten_process, listening_on, run_server, skip_without_ipv6_loopback
from tests.tls_support import Certificate


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return Certificate(tmp_path_factory.mktemp("certs"))


def sockets_of(server: Server) -> list[socket.socket]:
    return [listener.sockets[0] for listener in server.servers]


def get_facts(url: str, **client: Any) -> dict[str, Any]:
    with httpx.Client(**client) as http:
        response = http.get(url)
    assert response.status_code == 200
    facts: dict[str, Any] = response.json()
    return facts


def curl_facts(*args: str) -> dict[str, Any]:
    result = subprocess.run(["curl", "-s", *args], capture_output=True, timeout=20, check=True)
    facts: dict[str, Any] = json.loads(result.stdout)
    return facts


def test_an_ipv4_and_an_ipv6_bind_are_served_at_once() -> None:
    skip_without_ipv6_loopback()
    with run_server(facts_app, bind=["127.0.0.1:0", "[::1]:0"]) as running:
        ipv4, ipv6 = (sock.getsockname()[1] for sock in sockets_of(running.server))
        over_ipv4 = get_facts(f"http://127.0.0.1:{ipv4}/")
        over_ipv6 = get_facts(f"http://[::1]:{ipv6}/")
    assert over_ipv4["server"] == ["127.0.0.1", ipv4]
    assert over_ipv6["server"] == ["::1", ipv6]
    assert over_ipv4["scheme"] == over_ipv6["scheme"] == "http"


def test_a_unix_socket_and_a_tcp_bind_are_served_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with run_server(facts_app, bind=[f"unix:{path}", "127.0.0.1:0"]) as running:
        port = sockets_of(running.server)[1].getsockname()[1]
        over_unix = get_facts("http://localhost/", transport=httpx.HTTPTransport(uds=path))
        over_tcp = get_facts(f"http://127.0.0.1:{port}/")
    assert over_unix["server"] == [path, None]
    assert over_tcp["server"] == ["127.0.0.1", port]
    assert not Path(path).exists()  # the server removed the socket file it created


def test_tls_binds_and_insecure_binds_serve_https_and_http_at_once(
    certificate: Certificate,
) -> None:
    with run_server(
        facts_app,
        bind=["127.0.0.1:0"],
        insecure_bind=["127.0.0.1:0"],
        ssl_certfile=str(certificate.server_pem),
    ) as running:
        secure, insecure = (sock.getsockname()[1] for sock in sockets_of(running.server))
        over_tls = curl_facts("--cacert", str(certificate.ca_pem), f"https://127.0.0.1:{secure}/")
        in_plaintext = curl_facts(f"http://127.0.0.1:{insecure}/")
        # The insecure listener takes no TLS, certificate or not.
        refused = subprocess.run(
            ["curl", "-s", "--cacert", str(certificate.ca_pem), f"https://127.0.0.1:{insecure}/"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    assert over_tls["scheme"] == "https"
    assert over_tls["server"] == ["127.0.0.1", secure]
    assert in_plaintext["scheme"] == "http"
    assert in_plaintext["server"] == ["127.0.0.1", insecure]
    assert refused.returncode != 0


def test_an_inherited_socket_is_served_beside_a_tcp_bind() -> None:
    with socket.socket() as inherited:
        inherited.bind(("127.0.0.1", 0))
        inherited.listen()
        port = inherited.getsockname()[1]
        fd = inherited.fileno()
        with hasten_process(
            "cli_target:app",
            "--bind",
            f"fd://{fd}",
            "--bind",
            "127.0.0.1:0",
            pass_fds=(fd,),
        ) as running:
            first, second = listening_on(running, 2)
            assert first == f"http://127.0.0.1:{port}"
            assert get_facts(f"{first}/")["server"] == ["127.0.0.1", port]
            assert get_facts(f"{second}/")["scheme"] == "http"


def test_the_startup_log_names_every_listener(certificate: Certificate, tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with hasten_process(
        "cli_target:app",
        "--bind",
        "127.0.0.1:0",
        "--bind",
        f"unix:{path}",
        "--insecure-bind",
        "127.0.0.1:0",
        "--ssl-certfile",
        str(certificate.server_pem),
    ) as running:
        secure, unix, insecure = listening_on(running, 3)
        assert secure.startswith("https://127.0.0.1:")
        assert unix == f"unix socket {path}"
        assert insecure.startswith("http://127.0.0.1:")
        assert f"Listening on {secure} (Press CTRL+C to quit)" in running.output()
        # The Unix socket is a --bind too, so it serves TLS, and the log says so.
        assert f"Listening on {unix} (https) (Press CTRL+C to quit)" in running.output()
        assert get_facts(f"{insecure}/")["scheme"] == "http"
        assert (
            get_facts(f"{secure}/", verify=ssl.create_default_context(cafile=certificate.ca_pem))[
                "scheme"
            ]
            == "https"
        )
