"""--proxy-protocol end to end: a raw sender writes a PROXY header, then HTTP/1.1, HTTP/2
(prior knowledge), a WebSocket or a TLS handshake; a bad, missing, slow or untrusted header
closes the connection without a byte of response, and the server keeps serving."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import trustme

from hasten import Config
from tests.apps.origin_app import app as origin_app
from tests.harness import RawClient, RunningServer, request, run_server
from tests.protocols.h2client import H2Client
from tests.protocols.ws_support import read_frame, upgrade_request
from tests.proxy_protocol_support import LOCAL, inet, ssl_tlv, tlv, v1, v2


def serve(**settings: Any) -> Any:
    return run_server(origin_app, lifespan="off", proxy_protocol=True, **settings)


def origin_after(server: RunningServer, header: bytes) -> dict[str, Any]:
    with server.connect() as client:
        client.send(header + request())
        result: dict[str, Any] = json.loads(client.read_response().body)
        return result


def closed_without_a_response(server: RunningServer, data: bytes) -> bool:
    with server.connect() as client:
        client.send(data)
        return client.read_all() == b""


# -- what a valid header changes -----------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_v1_header_names_the_client_of_an_http1_request(loop: str) -> None:
    with serve(loop=loop) as server:
        origin = origin_after(server, v1("203.0.113.9", "10.0.0.1", 51000, 443))
    assert origin["client"] == ["203.0.113.9", 51000]
    # scope["server"] stays the socket the proxy reached.
    assert origin["server"] == [server.host, server.port]
    assert origin["scheme"] == "http"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_v2_header_names_the_client_of_an_http1_request(loop: str) -> None:
    with serve(loop=loop) as server:
        assert origin_after(server, v2())["client"] == ["203.0.113.9", 51000]


def test_v2_ipv6_client() -> None:
    with serve() as server:
        origin = origin_after(server, v2(inet("2001:db8::9", "2001:db8::1", 4711, 443)))
    assert origin["client"] == ["2001:db8::9", 4711]


def test_every_request_of_a_keep_alive_connection_has_the_headers_client() -> None:
    with serve() as server, server.connect() as client:
        client.send(v1() + request() + request())
        first, second = client.read_response(), client.read_response()
    assert json.loads(first.body)["client"] == json.loads(second.body)["client"]
    assert json.loads(second.body)["client"] == ["203.0.113.9", 51000]


def test_http2_prior_knowledge_after_the_header() -> None:
    with serve() as server:
        sock = socket.create_connection((server.host, server.port), timeout=5)
        sock.sendall(v2())
        with H2Client(server.host, server.port, sock=sock).start() as client:
            response = client.response(client.request("/"))
    origin = json.loads(response.body)
    assert (origin["http_version"], origin["client"]) == ("2", ["203.0.113.9", 51000])


def test_websocket_after_the_header() -> None:
    with serve(ws="websockets") as server, server.connect() as client:
        client.send(v1() + upgrade_request())
        assert client.read_response(head_request=True).status == 101
        _, _, payload = read_frame(client)
    assert json.loads(payload)["client"] == ["203.0.113.9", 51000]


def test_local_command_keeps_the_real_peer() -> None:
    # The proxy's own health check (§2.2: LOCAL).
    with serve() as server:
        assert origin_after(server, v2(command=LOCAL))["client"][0] == "127.0.0.1"


def test_v1_unknown_keeps_the_real_peer() -> None:
    with serve() as server:
        assert origin_after(server, b"PROXY UNKNOWN\r\n")["client"][0] == "127.0.0.1"


def test_ssl_tlv_makes_the_request_https_with_a_tls_extension() -> None:
    # HAProxy terminated the client's TLS: `send-proxy-v2-ssl-cn`.
    header = v2(tlvs=ssl_tlv(client=0x03, common_name=b"alice", cipher=b"TLS_AES_128_GCM_SHA256"))
    with serve() as server:
        origin = origin_after(server, header)
    assert origin["scheme"] == "https"
    assert origin["tls"] == {
        "server_cert": None,
        "client_cert_chain": [],
        "client_cert_name": "CN=alice",
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1301,
    }


def test_ssl_tlv_with_a_failed_verification_reports_it() -> None:
    with serve() as server:
        origin = origin_after(server, v2(tlvs=ssl_tlv(client=0x03, verify=20)))
    assert origin["tls"]["client_cert_error"] == "certificate verification failed (20)"


def test_ssl_tlv_without_the_ssl_bit_changes_nothing() -> None:
    with serve() as server:
        origin = origin_after(server, v2(tlvs=ssl_tlv(client=0x00)))
    assert (origin["scheme"], origin["tls"]) == ("http", None)


def test_header_split_byte_by_byte_across_reads() -> None:
    with serve() as server, server.connect() as client:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in v2(tlvs=tlv(0x04, b"padding")):
            client.send(bytes([byte]))
            time.sleep(0.005)
        client.send(request())
        assert json.loads(client.read_response().body)["client"] == ["203.0.113.9", 51000]


def test_request_bytes_in_the_same_segment_as_the_header_are_not_lost() -> None:
    with serve() as server, server.connect() as client:
        client.send(v1() + request() + v1())  # a second "header" is just a bad request
        assert client.read_response().status == 200
        assert client.read_response().status == 400


def test_unix_socket_peers_are_trusted_with_unix(tmp_path: Path) -> None:
    uds = str(tmp_path / "pp.sock")
    with serve(uds=uds, forwarded_allow_ips="unix:") as server:
        assert origin_after(server, v1())["client"] == ["203.0.113.9", 51000]


# -- TLS after the header ------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_handshake_follows_the_header(tmp_path: Path, loop: str) -> None:
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with serve(ssl_certfile=str(tmp_path / "server.pem"), http="h1", loop=loop) as server:
        raw = socket.create_connection((server.host, server.port), timeout=5)
        raw.sendall(v1())
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            client = RawClient(tls)
            client.send(request())
            origin = json.loads(client.read_response().body)
    assert origin["client"] == ["203.0.113.9", 51000]
    assert origin["scheme"] == "https"
    assert origin["tls"]["tls_version"] in (0x0303, 0x0304)


# -- what closes the connection ------------------------------------------------------------

HOSTILE = {
    "no header": request(),
    "oversized v1": b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n" + request(),
    "non-ASCII v1": "PROXY TCP4 203.0.113.9 10.0.0.1 5100Ö 443\r\n".encode() + request(),
    "bare LF v1": b"PROXY TCP4 203.0.113.9 10.0.0.1 51000 443\n" + request(),
    "bad v2 signature": b"\r\n\r\n\x00\r\nQUIX\n" + v2()[12:] + request(),
    "v2 length beyond the limit": v2(tlvs=tlv(0x04, b"\0" * 5000)) + request(),
    "v2 unknown family": v2()[:13] + b"\x41" + v2()[14:] + request(),
    "v2 TLV past the end": v2(tlvs=b"\x04\x00\x09abc") + request(),
    "TLS instead of a header": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40,
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_header_closes_without_a_response_and_the_server_keeps_serving(
    data: bytes,
) -> None:
    with serve() as server:
        assert closed_without_a_response(server, data)
        assert origin_after(server, v1())["client"] == ["203.0.113.9", 51000]


def test_truncated_v2_header_then_close() -> None:
    with serve() as server:
        with server.connect() as client:
            client.send(v2()[:20])
            client.sock.shutdown(socket.SHUT_WR)
            assert client.read_all() == b""
        assert origin_after(server, v2())["client"] == ["203.0.113.9", 51000]


def test_an_incomplete_header_times_out() -> None:
    with serve(timeout_proxy_protocol=0.3) as server, server.connect() as client:
        started = time.monotonic()
        client.send(v2()[:20])
        assert client.read_all(timeout=5) == b""
        assert time.monotonic() - started < 3


def test_untrusted_peer_is_closed_even_with_a_valid_header() -> None:
    with serve(forwarded_allow_ips="10.0.0.1") as server:
        assert closed_without_a_response(server, v1() + request())


def test_without_the_setting_a_header_is_a_bad_request() -> None:
    with run_server(origin_app, lifespan="off") as server, server.connect() as client:
        client.send(v1() + request())
        assert client.read_response().status == 400


@pytest.mark.parametrize(
    ("setting", "value"),
    [("timeout_proxy_protocol", 0), ("limit_proxy_protocol_header", 100)],
)
def test_bad_proxy_protocol_settings_are_config_errors(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=setting):
        Config(app="x:y", **{setting: value})


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        ("10.0.0.5", ["203.0.113.7", 0]),  # an HTTP proxy the PROXY header names: believed
        ("198.51.100.1", ["198.51.100.1", 51000]),  # a client: its X-Forwarded-For is not
    ],
)
def test_proxy_headers_are_believed_only_from_a_trusted_client_of_the_header(
    named: str, expected: list[Any]
) -> None:
    settings = {"proxy_headers": True, "forwarded_allow_ips": "127.0.0.1, 10.0.0.0/8"}
    with serve(**settings) as server, server.connect() as client:
        client.send(v1(named, "10.0.0.1", 51000, 80))
        client.send(request(headers={"X-Forwarded-For": "203.0.113.7"}))
        origin = json.loads(client.read_response().body)
    assert origin["client"] == expected
