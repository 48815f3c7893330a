"""TLS: https with ALPN (HTTP/2 and HTTP/1.1), client certificates, the ASGI ``tls`` scope
extension, and failed handshakes — against certificates made by trustme in the test."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.harness import hasten_process, run_server
from tests.protocols.h2client import H2Client, ensure_h2load

LOCALHOST = "127.0.0.1"


async def tls_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    tls = scope["extensions"].get("tls")
    payload = json.dumps(
        {"http_version": scope["http_version"], "scheme": scope["scheme"], "tls": tls}
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": payload})


class Certificates:
    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        server = self.ca.issue_cert(LOCALHOST, "localhost")
        client = self.ca.issue_cert("client.example", common_name="client.example")
        self.server_pem = directory / "server.pem"
        self.ca_pem = directory / "ca.pem"
        self.client_pem = directory / "client.pem"
        server.private_key_and_cert_chain_pem.write_to_path(str(self.server_pem))
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        client.private_key_and_cert_chain_pem.write_to_path(str(self.client_pem))
        self.server_cert_pem = server.cert_chain_pems[0].bytes().decode()
        self.client_cert_pem = client.cert_chain_pems[0].bytes().decode()

    def client_context(self, *, with_certificate: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_pem))
        if with_certificate:
            context.load_cert_chain(str(self.client_pem))
        return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


def https(server: Any) -> str:
    return f"https://{LOCALHOST}:{server.port}"


def curl(*args: str) -> dict[str, Any]:
    result = subprocess.run(["curl", "-s", *args], capture_output=True, timeout=20, check=True)
    return json.loads(result.stdout)


def test_curl_negotiates_http2_with_alpn(certs: Certificates) -> None:
    with run_server(tls_app, ssl_certfile=str(certs.server_pem)) as server:
        answer = curl("--cacert", str(certs.ca_pem), f"{https(server)}/")
    assert answer["http_version"] == "2"
    assert answer["scheme"] == "https"


def test_curl_gets_http11_over_tls_when_it_asks_for_it(certs: Certificates) -> None:
    with run_server(tls_app, ssl_certfile=str(certs.server_pem)) as server:
        answer = curl("--http1.1", "--cacert", str(certs.ca_pem), f"{https(server)}/")
    assert answer["http_version"] == "1.1"
    assert answer["scheme"] == "https"


def test_http_h1_offers_only_http11_over_tls(certs: Certificates) -> None:
    with run_server(tls_app, ssl_certfile=str(certs.server_pem), http="h1") as server:
        answer = curl("--cacert", str(certs.ca_pem), f"{https(server)}/")
    assert answer["http_version"] == "1.1"


def test_tls_extension_reports_version_cipher_and_server_certificate(
    certs: Certificates,
) -> None:
    with (
        run_server(tls_app, ssl_certfile=str(certs.server_pem)) as server,
        httpx.Client(verify=certs.client_context(), http2=True) as client,
    ):
        response = client.get(f"{https(server)}/")
        assert response.http_version == "HTTP/2"
    tls = response.json()["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int)
    assert 0 < tls["cipher_suite"] <= 0xFFFF
    assert tls["server_cert"] == certs.server_cert_pem
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None


def test_tls_extension_is_in_http11_scopes_too(certs: Certificates) -> None:
    with (
        run_server(tls_app, ssl_certfile=str(certs.server_pem)) as server,
        httpx.Client(verify=certs.client_context()) as client,
    ):
        response = client.get(f"{https(server)}/")
    assert response.json()["http_version"] == "1.1"
    assert response.json()["tls"]["server_cert"] == certs.server_cert_pem


def test_cipher_suite_is_the_iana_number_of_the_negotiated_cipher(
    certs: Certificates,
) -> None:
    context = certs.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256")
    with (
        run_server(tls_app, ssl_certfile=str(certs.server_pem)) as server,
        httpx.Client(verify=context) as client,
    ):
        tls = client.get(f"{https(server)}/").json()["tls"]
    assert tls["tls_version"] == 0x0303
    # RFC 5289: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 is 0xC02F, the ECDSA one 0xC02B.
    assert tls["cipher_suite"] in (0xC02F, 0xC02B)


def test_client_certificate_reaches_the_scope(certs: Certificates) -> None:
    settings = {
        "ssl_certfile": str(certs.server_pem),
        "ssl_ca_certs": str(certs.ca_pem),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    with (
        run_server(tls_app, **settings) as server,
        httpx.Client(verify=certs.client_context(with_certificate=True)) as client,
    ):
        tls = client.get(f"{https(server)}/").json()["tls"]
    assert tls["client_cert_chain"][0] == certs.client_cert_pem
    assert tls["client_cert_name"].startswith("CN=client.example")
    assert tls["client_cert_error"] is None


def test_required_client_certificate_refuses_a_client_without_one(
    certs: Certificates,
) -> None:
    settings = {
        "ssl_certfile": str(certs.server_pem),
        "ssl_ca_certs": str(certs.ca_pem),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    with (
        run_server(tls_app, **settings) as server,
        httpx.Client(verify=certs.client_context()) as client,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        client.get(f"{https(server)}/")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_below_1_2_is_refused(certs: Certificates) -> None:
    context = certs.client_context()
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        run_server(tls_app, ssl_certfile=str(certs.server_pem)) as server,
        socket.create_connection((LOCALHOST, server.port), timeout=5) as sock,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(sock, server_hostname=LOCALHOST)


def test_failed_handshake_is_logged_at_debug_and_others_are_served(
    certs: Certificates, captured_errors: list[logging.LogRecord]
) -> None:
    with run_server(tls_app, ssl_certfile=str(certs.server_pem), log_level="debug") as server:
        with socket.create_connection((LOCALHOST, server.port), timeout=5) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            plain.recv(65536)  # the server gives up on this connection
        answer = curl("--cacert", str(certs.ca_pem), f"{https(server)}/")
    assert answer["http_version"] == "2"
    failures = [r for r in captured_errors if "TLS handshake failed" in r.getMessage()]
    assert failures
    assert all(record.levelno == logging.DEBUG for record in failures)
    assert not [r for r in captured_errors if r.levelno >= logging.ERROR]


def test_h2load_over_tls_has_no_failed_requests(certs: Certificates) -> None:
    h2load = ensure_h2load()
    with run_server(tls_app, ssl_certfile=str(certs.server_pem), access_log=False) as server:
        result = subprocess.run(
            [h2load, "-n", "400", "-c", "4", "-m", "8", f"{https(server)}/"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    assert "400 succeeded, 0 failed" in result.stdout, result.stdout


def test_cli_serves_https_and_says_so(certs: Certificates, tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "tls_cli_app.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'http':\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': scope['scheme'].encode()})\n"
    )
    with hasten_process(
        "tls_cli_app:app",
        "--port",
        "0",
        "--ssl-certfile",
        str(certs.server_pem),
        cwd=app_dir,
    ) as process:
        assert "Listening on https://" in process.output()
        result = subprocess.run(
            ["curl", "-s", "--cacert", str(certs.ca_pem), f"https://{LOCALHOST}:{process.port}/"],
            capture_output=True,
            timeout=20,
            check=True,
        )
    assert result.stdout == b"https"


def test_http_h2_speaks_http2_over_tls_without_alpn(certs: Certificates) -> None:
    with run_server(tls_app, ssl_certfile=str(certs.server_pem), http="h2") as server:
        plain = socket.create_connection((LOCALHOST, server.port), timeout=5)
        tls_sock = certs.client_context().wrap_socket(plain, server_hostname=LOCALHOST)
        assert tls_sock.selected_alpn_protocol() is None
        with H2Client(LOCALHOST, server.port, sock=tls_sock).start() as client:
            response = client.response(client.request("/"))
    answer = json.loads(response.body)
    assert answer["http_version"] == "2"
    assert answer["scheme"] == "https"
    assert answer["tls"]["tls_version"] in (0x0303, 0x0304)


def test_ca_certs_without_cert_reqs_warns_that_nothing_is_verified(
    certs: Certificates, captured_errors: list[logging.LogRecord]
) -> None:
    settings = {"ssl_certfile": str(certs.server_pem), "ssl_ca_certs": str(certs.ca_pem)}
    with run_server(tls_app, **settings):
        pass
    warnings = [r.getMessage() for r in captured_errors if r.levelno == logging.WARNING]
    assert any("ssl_cert_reqs is 0" in message for message in warnings), warnings
