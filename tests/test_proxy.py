"""Trusted proxy headers: unit tests of TrustedProxies and a served request end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hasten import Config
from hasten.proxy import TrustedProxies, apply_proxy_headers
from tests.harness import RunningServer, request, run_server


@pytest.mark.parametrize(
    ("spec", "host", "trusted"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("10.0.0.0/8", "10.20.30.40", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.1/8", "10.9.9.9", True),
        ("::1", "::1", True),
        ("2001:db8::/32", "2001:db8::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        ("*", "198.51.100.7", True),
        ("192.0.2.1, 198.51.100.0/24", "198.51.100.200", True),
        ("proxy.internal", "proxy.internal", True),
        ("127.0.0.1", "not-an-ip", False),
    ],
)
def test_trusted_proxies_match_ips_cidrs_and_star(spec: str, host: str, trusted: bool) -> None:
    assert TrustedProxies(spec).is_trusted(host) is trusted


def test_unix_socket_peers_are_trusted_only_with_unix_entry() -> None:
    assert TrustedProxies("unix:").is_trusted(None)
    assert not TrustedProxies("127.0.0.1").is_trusted(None)
    assert TrustedProxies("*").is_trusted(None)


def test_right_most_untrusted_forwarded_for_address_is_the_client() -> None:
    proxies = TrustedProxies("10.0.0.0/8")
    # The client could have forged 1.1.1.1; 203.0.113.5 is what the first trusted proxy saw.
    assert proxies.client_from_forwarded_for("1.1.1.1, 203.0.113.5, 10.0.0.2") == "203.0.113.5"


def test_forwarded_for_of_only_listed_proxies_gives_the_left_most_address() -> None:
    assert TrustedProxies("10.0.0.0/8").client_from_forwarded_for("10.1.1.1, 10.0.0.2") == (
        "10.1.1.1"
    )


def test_star_never_takes_the_client_supplied_left_most_forwarded_for_entry() -> None:
    # '*' trusts the peer, not the addresses in the header: the peer saw 203.0.113.5.
    assert TrustedProxies("*").client_from_forwarded_for("1.1.1.1, 203.0.113.5") == "203.0.113.5"


def test_star_with_listed_proxies_walks_past_them() -> None:
    proxies = TrustedProxies("*, 10.0.0.0/8")
    assert proxies.client_from_forwarded_for("1.1.1.1, 203.0.113.5, 10.0.0.2") == "203.0.113.5"


def test_empty_forwarded_for_gives_no_client() -> None:
    assert TrustedProxies("*").client_from_forwarded_for(" , ") is None


def test_repeated_forwarded_for_lines_form_one_list() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"203.0.113.9")]
    client, _, _ = apply_proxy_headers(
        TrustedProxies("127.0.0.1"), ("127.0.0.1", 5), "http", headers
    )
    assert client == ("203.0.113.9", 0)


def test_untrusted_peer_headers_are_ignored_by_apply() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-proto", b"https")]
    result = apply_proxy_headers(TrustedProxies("10.0.0.1"), ("127.0.0.1", 5), "http", headers)
    assert result == (("127.0.0.1", 5), "http", headers)


@pytest.mark.parametrize(
    ("proto", "scheme", "expected"),
    [
        (b"https", "http", "https"),
        (b"HTTPS", "http", "https"),
        (b"http, https", "http", "https"),
        (b"https", "ws", "wss"),
        (b"javascript", "http", "http"),
    ],
)
def test_forwarded_proto_sets_the_scheme(proto: bytes, scheme: str, expected: str) -> None:
    headers = [(b"x-forwarded-proto", proto)]
    _, result, _ = apply_proxy_headers(TrustedProxies("*"), ("127.0.0.1", 5), scheme, headers)
    assert result == expected


def test_invalid_forwarded_allow_ips_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="forwarded_allow_ips"):
        Config(app="x:y", forwarded_allow_ips="10.0.0.0/33")


async def scope_reporter(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = json.dumps({"client": scope["client"], "scheme": scope["scheme"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def served_scope(server: RunningServer, headers: dict[str, str]) -> dict[str, Any]:
    with server.connect() as client:
        client.send(request("GET", "/", headers=headers))
        result: dict[str, Any] = json.loads(client.read_response().body)
        return result


FORWARDED = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7", "X-Forwarded-Proto": "https"}


def test_trusted_peer_sets_client_and_scheme_end_to_end() -> None:
    with run_server(scope_reporter, lifespan="off", proxy_headers=True) as server:
        scope = served_scope(server, FORWARDED)
    assert scope == {"client": ["203.0.113.7", 0], "scheme": "https"}


def test_star_takes_the_address_the_proxy_saw_end_to_end() -> None:
    with run_server(
        scope_reporter, lifespan="off", proxy_headers=True, forwarded_allow_ips="*"
    ) as server:
        scope = served_scope(server, {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"})
    assert scope["client"] == ["203.0.113.7", 0]


def test_untrusted_peer_headers_are_ignored_end_to_end() -> None:
    with run_server(
        scope_reporter, lifespan="off", proxy_headers=True, forwarded_allow_ips="10.0.0.1"
    ) as server:
        scope = served_scope(server, FORWARDED)
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"


def test_headers_are_ignored_without_proxy_headers_option() -> None:
    with run_server(scope_reporter, lifespan="off", forwarded_allow_ips="*") as server:
        scope = served_scope(server, FORWARDED)
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"


def test_unix_socket_peer_is_trusted_with_unix_entry(tmp_path: Path) -> None:
    uds = str(tmp_path / "proxy.sock")
    with run_server(
        scope_reporter, lifespan="off", uds=uds, proxy_headers=True, forwarded_allow_ips="unix:"
    ) as server:
        scope = served_scope(server, FORWARDED)
    assert scope == {"client": ["203.0.113.7", 0], "scheme": "https"}
