"""The HTTP/2 rows of the benchmark: their h2load command lines, the servers' TLS options and
the probes that tell whether a server speaks HTTP/2 (against a real hasten)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from bench.run import SCENARIOS, Scenario, h2load_argv, peers_for
from bench.servers import (
    GRANIAN,
    HASTEN,
    HYPERCORN,
    UVICORN,
    Certificate,
    ServerSpec,
    baseline,
    self_signed_certificate,
)

from bench import clients
from tests.harness import run_server

H2_ROWS = {s.name: s for s in SCENARIOS if s.kind == "h2"}


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed_certificate(str(tmp_path_factory.mktemp("tls")))


def test_the_http2_rows_are_issue_16s() -> None:
    assert list(H2_ROWS) == ["h2", "h2c100", "h2big", "h2tls"]


@pytest.mark.parametrize(
    ("name", "connections", "streams", "url"),
    [
        ("h2", "-c8", "-m32", "http://127.0.0.1:8000/"),
        ("h2c100", "-c100", "-m10", "http://127.0.0.1:8000/"),
        ("h2big", "-c8", "-m4", "http://127.0.0.1:8000/"),
        ("h2tls", "-c8", "-m32", "https://127.0.0.1:8000/"),
    ],
)
def test_h2load_runs_each_row_with_its_connections_and_streams(
    name: str, connections: str, streams: str, url: str
) -> None:
    argv = h2load_argv(H2_ROWS[name], 8000, 6, 2)
    assert {connections, streams, "-D6", "--warm-up-time=2"} <= set(argv)
    assert argv[-1] == url


def test_the_big_row_serves_the_one_mebibyte_app() -> None:
    from bench.apps.plain import STREAM_CHUNK, STREAM_CHUNKS

    assert H2_ROWS["h2big"].app == "plain:big"
    assert len(STREAM_CHUNK) * STREAM_CHUNKS == 1024 * 1024


def test_hypercorn_joins_every_http2_row_where_it_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    for scenario in H2_ROWS.values():
        assert HYPERCORN in peers_for(scenario)


@pytest.mark.parametrize(
    ("spec", "options"),
    [
        (HASTEN, ["--ssl-certfile", "/c.pem", "--ssl-keyfile", "/k.pem"]),
        (UVICORN, ["--ssl-certfile", "/c.pem", "--ssl-keyfile", "/k.pem"]),
        (GRANIAN, ["--ssl-certificate", "/c.pem", "--ssl-keyfile", "/k.pem"]),
        (HYPERCORN, ["--certfile", "/c.pem", "--keyfile", "/k.pem"]),
        (baseline("/base/bin/python"), ["--ssl-certfile", "/c.pem", "--ssl-keyfile", "/k.pem"]),
    ],
)
def test_every_server_is_told_its_certificate_in_its_own_options(
    spec: ServerSpec, options: list[str]
) -> None:
    plain = spec.command("plain:hello", 8000, 5)
    served = spec.command("plain:hello", 8000, 5, certificate=Certificate("/c.pem", "/k.pem"))
    assert served == [*plain, *options]


def test_the_certificate_is_a_pem_pair_for_the_loopback_address(
    certificate: Certificate,
) -> None:
    assert Path(certificate.certfile).read_text().startswith("-----BEGIN CERTIFICATE-----")
    # granian reads PKCS#8 keys only.
    assert Path(certificate.keyfile).read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_the_tls_probe_sees_alpn_pick_h2(certificate: Certificate) -> None:
    tls = {"ssl_certfile": certificate.certfile, "ssl_keyfile": certificate.keyfile}
    with run_server(hello, **tls) as server:
        assert clients.probe_http2_over_tls(server.port)
    with run_server(hello, http="h1", **tls) as server:
        assert not clients.probe_http2_over_tls(server.port)


def test_the_prior_knowledge_probe_needs_a_server_preface() -> None:
    with run_server(hello) as server:
        assert clients.probe_http2(server.port)
    with run_server(hello, http="h1") as server:
        assert not clients.probe_http2(server.port)


def test_a_scenario_is_plain_text_with_one_stream_unless_told() -> None:
    scenario = Scenario("x", "", "plain:hello", "h2", 1)
    assert (scenario.streams, scenario.tls) == (1, False)
