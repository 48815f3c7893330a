"""RFC 7239 ``Forwarded`` and ``X-Forwarded-Host``/``-Port``: the grammar, the trusted walk,
and served requests over HTTP/1.1, HTTP/2 and WebSockets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hasten.forwarded import parse_forwarded, parse_node
from hasten.proxy import TrustedProxies, apply_proxy_headers
from tests.apps.origin_app import app as origin_app
from tests.harness import RunningServer, request, run_server
from tests.protocols.h2client import H2Client
from tests.protocols.ws_support import read_frame, upgrade_request

PEER = ("127.0.0.1", 5000)

# -- the grammar ---------------------------------------------------------------------------


def test_elements_and_pairs_are_split_and_names_lower_cased() -> None:
    assert parse_forwarded(b"for=192.0.2.60;Proto=http;by=203.0.113.43, for=198.51.100.17") == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
        {"for": "198.51.100.17"},
    ]


def test_quoted_strings_keep_commas_and_semicolons_and_unescape() -> None:
    assert parse_forwarded(b'for="[2001:db8:cafe::17]:4711";host="a,b;c\\"d"') == [
        {"for": "[2001:db8:cafe::17]:4711", "host": 'a,b;c"d'}
    ]


def test_empty_list_members_and_spaces_around_semicolons_are_accepted() -> None:
    assert parse_forwarded(b" , for=192.0.2.1 ; proto=https ,, ") == [
        {"for": "192.0.2.1", "proto": "https"}
    ]


@pytest.mark.parametrize(
    "line",
    [
        b'for="192.0.2.1',  # unterminated quoted string
        b"for=192.0.2.1;for=192.0.2.2",  # RFC 7239 §4: a parameter at most once
        b"for",
        b"for=",
        b"for=[::1]",  # ':' and '[' are not tchars: IPv6 must be quoted
        b"for=a b",
        b"=x",
        b"for=\xff",
    ],
)
def test_malformed_element_is_none_and_ends_the_list(line: bytes) -> None:
    assert parse_forwarded(b"for=198.51.100.1, " + line)[-1] is None


@pytest.mark.parametrize(
    ("node", "parsed"),
    [
        ("192.0.2.43", ("192.0.2.43", 0)),
        ("192.0.2.43:47011", ("192.0.2.43", 47011)),
        ("[2001:db8:cafe::17]", ("2001:db8:cafe::17", 0)),
        ("[2001:db8:cafe::17]:4711", ("2001:db8:cafe::17", 4711)),
        ("unknown", ("unknown", 0)),
        ("_hidden", ("_hidden", 0)),
        ("_SEVKISEK", ("_SEVKISEK", 0)),
        ("192.0.2.43:_port", ("192.0.2.43", 0)),
        ("192.0.2.43:65536", None),
        ("192.0.2.43:", None),
        ("2001:db8::1", None),  # IPv6 must be bracketed
        ("[192.0.2.1]", None),
        ("[2001:db8::1", None),
        ("example.com", None),
        ("_", None),
        ("", None),
        ("1.2.3.4.5", None),
    ],
)
def test_nodes(node: str, parsed: tuple[str, int] | None) -> None:
    assert parse_node(node) == parsed


@given(st.binary(max_size=200))
def test_any_bytes_parse_without_an_exception(line: bytes) -> None:
    for element in parse_forwarded(line):
        if element is not None and "for" in element:
            parse_node(element["for"])


# -- what a trusted peer's headers change ---------------------------------------------------


def applied(
    headers: list[tuple[bytes, bytes]], allow: str = "127.0.0.1", scheme: str = "http"
) -> tuple[Any, str, dict[bytes, bytes]]:
    client, result_scheme, result_headers = apply_proxy_headers(
        TrustedProxies(allow), PEER, scheme, headers
    )
    return client, result_scheme, dict(result_headers)


def test_nginx_forwarded_sets_client_scheme_and_host() -> None:
    # proxy_set_header Forwarded "for=\"$remote_addr:$remote_port\";proto=$scheme;host=$host";
    headers = [
        (b"host", b"backend:8000"),
        (b"forwarded", b'for="198.51.100.7:51234";proto=https;host=shop.example'),
    ]
    client, scheme, fields = applied(headers)
    assert client == ("198.51.100.7", 51234)
    assert scheme == "https"
    assert fields[b"host"] == b"shop.example"


def test_haproxy_option_forwarded_with_ipv6_client() -> None:
    # HAProxy 2.7+ `option forwarded for-port host proto by`.
    line = b'proto=https;host="shop.example:8443";for="[2001:db8::5]:4711";by=10.0.0.1'
    client, scheme, fields = applied([(b"host", b"x"), (b"forwarded", line)])
    assert client == ("2001:db8::5", 4711)
    assert scheme == "https"
    assert fields[b"host"] == b"shop.example:8443"


def test_walk_skips_listed_proxies_and_uses_the_client_elements_proto() -> None:
    # The edge proxy (10.0.0.1) saw the client over https and told the inner one (10.0.0.2),
    # which reached us over http.
    line = b"for=6.6.6.6;proto=http, for=203.0.113.5;proto=https, for=10.0.0.1;proto=http"
    client, scheme, _ = applied([(b"forwarded", line)], "127.0.0.1, 10.0.0.0/8")
    assert client == ("203.0.113.5", 0)
    assert scheme == "https"


def test_star_never_walks_past_the_element_the_peer_added() -> None:
    client, _, _ = applied([(b"forwarded", b"for=6.6.6.6, for=203.0.113.5")], "*")
    assert client == ("203.0.113.5", 0)


def test_several_forwarded_lines_form_one_list() -> None:
    headers = [(b"forwarded", b"for=6.6.6.6"), (b"forwarded", b"for=203.0.113.5")]
    assert applied(headers)[0] == ("203.0.113.5", 0)


@pytest.mark.parametrize("node", [b"unknown", b"_hidden"])
def test_obfuscated_client_is_kept_as_given(node: bytes) -> None:
    client, _, _ = applied([(b"forwarded", b"for=6.6.6.6, for=" + node + b";proto=https")])
    assert client == (node.decode(), 0)


def test_element_without_for_keeps_the_peer_but_sets_proto() -> None:
    assert applied([(b"forwarded", b"proto=https")])[:2] == (PEER, "https")


@pytest.mark.parametrize(
    "line",
    [
        b'for=203.0.113.5, for="6.6.6.6',  # the client's unterminated quote
        b"for=203.0.113.5, for=not-an-address",
        b"for=203.0.113.5;for=6.6.6.6",
        b"for=\xff\xfe",
    ],
)
def test_malformed_forwarded_is_ignored(line: bytes) -> None:
    assert applied([(b"forwarded", line)])[:2] == (PEER, "http")


def test_a_clients_bad_line_does_not_hide_the_proxys_line() -> None:
    headers = [(b"forwarded", b'for="6.6.6.6'), (b"forwarded", b"for=203.0.113.5")]
    assert applied(headers)[0] == ("203.0.113.5", 0)


def test_unknown_proto_and_invalid_host_are_ignored() -> None:
    line = b'for=203.0.113.5;proto=javascript;host="a b"'
    client, scheme, fields = applied([(b"host", b"backend"), (b"forwarded", line)])
    assert (client, scheme, fields[b"host"]) == (("203.0.113.5", 0), "http", b"backend")


def test_x_forwarded_headers_win_over_forwarded() -> None:
    # nginx passes a client's own Forwarded through while it sets X-Forwarded-For.
    headers = [(b"forwarded", b"for=6.6.6.6;proto=https"), (b"x-forwarded-for", b"203.0.113.5")]
    assert applied(headers)[:2] == (("203.0.113.5", 0), "http")


def test_untrusted_peer_forwarded_is_ignored() -> None:
    headers = [(b"host", b"backend"), (b"forwarded", b"for=6.6.6.6;proto=https;host=evil")]
    assert applied(headers, "10.0.0.1") == (PEER, "http", dict(headers))


def test_websocket_scheme_follows_the_forwarded_proto() -> None:
    assert applied([(b"forwarded", b"for=203.0.113.5;proto=https")], scheme="ws")[1] == "wss"


def test_x_forwarded_host_and_port_as_envoy_sends_them() -> None:
    headers = [
        (b"host", b"backend:8000"),
        (b"x-forwarded-for", b"203.0.113.5"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"shop.example"),
        (b"x-forwarded-port", b"8443"),
    ]
    client, scheme, fields = applied(headers)
    assert (client, scheme, fields[b"host"]) == (("203.0.113.5", 0), "https", b"shop.example:8443")


@pytest.mark.parametrize(
    ("host", "port", "scheme", "expected"),
    [
        (b"shop.example:8000", b"443", b"https", b"shop.example"),  # the default port is implied
        (b"[2001:db8::1]:8000", b"8080", b"http", b"[2001:db8::1]:8080"),
        (b"a.example, shop.example", None, b"http", b"shop.example"),  # the nearest proxy's
        (None, b"8080", b"http", b"backend:8080"),
        (b"shop.example", b"99999", b"http", b"shop.example"),  # a bad port is ignored
        (b"bad host", b"8080", b"http", b"backend:8000"),  # a bad host ignores both
    ],
)
def test_x_forwarded_host_and_port_rewrite_the_host_field(
    host: bytes | None, port: bytes | None, scheme: bytes, expected: bytes
) -> None:
    headers = [(b"host", b"backend:8000"), (b"x-forwarded-proto", scheme)]
    if host is not None:
        headers.append((b"x-forwarded-host", host))
    if port is not None:
        headers.append((b"x-forwarded-port", port))
    assert applied(headers)[2][b"host"] == expected


def test_forwarded_host_is_added_when_the_request_has_none() -> None:
    _, _, headers = apply_proxy_headers(
        TrustedProxies("*"), PEER, "http", [(b"forwarded", b"host=shop.example")]
    )
    assert headers == [(b"forwarded", b"host=shop.example"), (b"host", b"shop.example")]


# -- served requests -----------------------------------------------------------------------


NGINX_FORWARDED = {"Forwarded": 'for="[2001:db8::7]:4711";proto=https;host=shop.example'}


def serve(**settings: Any) -> Any:
    return run_server(origin_app, lifespan="off", proxy_headers=True, **settings)


def http1_origin(server: RunningServer, headers: dict[str, str]) -> dict[str, Any]:
    with server.connect() as client:
        client.send(request("GET", "/", headers=headers))
        result: dict[str, Any] = json.loads(client.read_response().body)
        return result


def test_forwarded_sets_the_scope_over_http1() -> None:
    with serve() as server:
        origin = http1_origin(server, NGINX_FORWARDED)
    assert origin["client"] == ["2001:db8::7", 4711]
    assert origin["scheme"] == "https"
    assert origin["host"] == "shop.example"
    assert origin["server"] == [server.host, server.port]  # the socket's, not forwarded


def test_forwarded_sets_the_scope_over_http2() -> None:
    with serve() as server, H2Client(server.host, server.port).start() as client:
        fields = [(key.lower(), value) for key, value in NGINX_FORWARDED.items()]
        response = client.response(client.request("/", headers=fields))
    origin = json.loads(response.body)
    assert (origin["client"], origin["scheme"], origin["host"]) == (
        ["2001:db8::7", 4711],
        "https",
        "shop.example",
    )


def test_forwarded_sets_the_scope_of_a_websocket() -> None:
    with serve(ws="websockets") as server, server.connect() as client:
        client.send(upgrade_request(NGINX_FORWARDED))
        assert client.read_response(head_request=True).status == 101
        _, _, payload = read_frame(client)
    origin = json.loads(payload)
    assert (origin["client"], origin["scheme"], origin["host"]) == (
        ["2001:db8::7", 4711],
        "wss",
        "shop.example",
    )


def test_untrusted_peer_forwarded_is_ignored_end_to_end() -> None:
    with serve(forwarded_allow_ips="10.0.0.1") as server:
        origin = http1_origin(server, NGINX_FORWARDED)
    assert (origin["client"][0], origin["scheme"], origin["host"]) == (
        "127.0.0.1",
        "http",
        "test",
    )


@pytest.mark.parametrize(
    "value",
    ['for="unterminated', "for=;;;", "for=1.2.3.4;for=5.6.7.8", "proto=" + "x" * 5000, ",,,,"],
)
def test_malformed_forwarded_is_served_as_if_absent(value: str) -> None:
    with serve() as server:
        origin = http1_origin(server, {"Forwarded": value})
        assert (origin["client"][0], origin["scheme"], origin["host"]) == (
            "127.0.0.1",
            "http",
            "test",
        )
        # and the server keeps serving
        assert http1_origin(server, NGINX_FORWARDED)["scheme"] == "https"
