"""Hostile-input checklist 2.2: HTTP/1.1 syntax of the request line and header fields."""

from __future__ import annotations

import pytest

from tests.conformance.recording_app import RecordingApp
from tests.conformance.wire import HOST, assert_refused, exchange
from tests.harness import RunningServer

Served = tuple[RunningServer, RecordingApp]

GET = b"GET / HTTP/1.1\r\n"


@pytest.mark.parametrize(
    "data",
    [
        GET + HOST + b"X-A: one\r\n two\r\n\r\n",
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n",
    ],
    ids=["plain-field", "framing-field"],
)
def test_obs_fold_is_refused(served: Served, data: bytes) -> None:
    assert_refused(*served, data, 400)


@pytest.mark.parametrize(
    "line",
    [b"Transfer-Encoding : chunked\r\n", b"Content-Length\t: 5\r\n", b"X-A : 1\r\n"],
)
def test_whitespace_before_colon_is_refused(served: Served, line: bytes) -> None:
    assert_refused(*served, b"POST / HTTP/1.1\r\n" + HOST + line + b"\r\nhello", 400)


def test_host_with_whitespace_before_colon_is_refused(served: Served) -> None:
    assert_refused(*served, GET + b"Host : t\r\n\r\n", 400)


def test_whitespace_started_line_after_request_line_is_refused(served: Served) -> None:
    assert_refused(*served, GET + b" Host: t\r\n\r\n", 400)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost: t\n\n",
        GET + b"Host: t\n\r\n",
        GET + b"Host: t\r\n\n",
    ],
    ids=["all-lf", "lf-after-field", "lf-ending-head"],
)
def test_bare_lf_line_endings_are_refused(served: Served, data: bytes) -> None:
    assert_refused(*served, data, 400)


@pytest.mark.parametrize(
    "data",
    [
        GET + HOST + b"X-A: a\rb\r\n\r\n",
        GET + HOST + b"X-Abc: \rxTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\rHost: t\r\n\r\n",
        GET + HOST + b"\rXGET /x HTTP/1.1\r\n\r\n",
    ],
    ids=["in-value", "hiding-a-field", "after-request-line", "ending-head"],
)
def test_bare_cr_is_refused(served: Served, data: bytes) -> None:
    assert_refused(*served, data, 400)


@pytest.mark.parametrize(
    "value",
    [
        b"a\x00b",
        b"a\x07b",
        b"a\x08b",
        b"\x1b[31mred",
        b"a\x7fb",
        b"v\x0bX-Forwarded-For: 127.0.0.1",
        b"v\x0cX-Forwarded-For: 127.0.0.1",
        b"v\x1cX-Forwarded-For: 127.0.0.1",
        b"v\x1dX-Forwarded-For: 127.0.0.1",
        b"v\x1eX-Forwarded-For: 127.0.0.1",
    ],
    ids=["NUL", "BEL", "BS", "ESC", "DEL", "VT", "FF", "FS", "GS", "RS"],
)
def test_control_characters_in_a_value_are_refused(served: Served, value: bytes) -> None:
    assert_refused(*served, GET + HOST + b"X-A: " + value + b"\r\n\r\n", 400)


@pytest.mark.parametrize(
    "value", [b"v\x85X-Forwarded-For: 127.0.0.1", b"v\xe2\x80\xa8X-Forwarded-For: 127.0.0.1"]
)
def test_obs_text_line_separators_stay_inside_their_value(served: Served, value: bytes) -> None:
    server, app = served
    [response] = exchange(server, GET + HOST + b"X-A: " + value + b"\r\n\r\n", 1)
    assert response.status == 200
    assert app.requests[0].headers == [(b"host", b"t"), (b"x-a", value)]


@pytest.mark.parametrize(
    "line",
    [
        b"X(: 1",
        b"X[: 1",
        b"X Y: 1",
        b"X\tY: 1",
        b"X@: 1",
        "Content-Lengthß: 3".encode(),
        b"Transfer-Encoding\xa0: chunked",
        b": empty-name",
        b"\x00: v",
        b"Foo",
    ],
    ids=["paren", "bracket", "space", "tab", "at", "non-ascii", "nbsp", "empty", "nul", "no-colon"],
)
def test_field_name_that_is_not_a_token_is_refused(served: Served, line: bytes) -> None:
    assert_refused(*served, GET + HOST + line + b"\r\n\r\n", 400)


def test_colon_inside_a_value_belongs_to_the_value(served: Served) -> None:
    server, app = served
    exchange(server, GET + HOST + b"Foo:Bar: x\r\n\r\n", 1)
    assert app.requests[0].headers == [(b"host", b"t"), (b"foo", b"Bar: x")]


def test_underscore_field_names_are_unrelated_to_framing(served: Served) -> None:
    server, app = served
    data = (
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"
    )
    [response] = exchange(server, data, 1)
    assert response.status == 200
    assert app.requests[0].body == b"hello"
    assert (b"transfer_encoding", b"chunked") in app.requests[0].headers


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"Host: a\r\nHost: a\r\n",
        b"Host: a\r\nHost: b\r\n",
        b"Host: a, b\r\n",
        b"Host: user@h\r\n",
        b"Host: h/path\r\n",
        b"Host: \r\n",
        b"Host: h:80x\r\n",
    ],
    ids=[
        "missing",
        "twice-same",
        "twice-different",
        "list",
        "userinfo",
        "path",
        "empty",
        "bad-port",
    ],
)
def test_http_1_1_without_exactly_one_valid_host_is_refused(served: Served, head: bytes) -> None:
    assert_refused(*served, GET + head + b"\r\n", 400)


@pytest.mark.parametrize("host", [b"example.com", b"example.com:8080", b"[::1]:80", b"10.0.0.1"])
def test_valid_host_values_are_accepted(served: Served, host: bytes) -> None:
    server, _ = served
    [response] = exchange(server, GET + b"Host: " + host + b"\r\n\r\n", 1)
    assert response.status == 200


def test_http_1_0_without_host_is_accepted(served: Served) -> None:
    server, app = served
    with server.connect() as client:
        client.send(b"GET /old HTTP/1.0\r\n\r\n")
        assert client.read_response().status == 200
        assert client.is_closed()
    assert app.paths() == ["/old"]


@pytest.mark.parametrize(
    "method", [b"G?T", b"GET\x00", b"GET:", b"-bl", b"GET\xc3\x9f", b"bla:rgh", b"get", b"FOO"]
)
def test_invalid_or_unknown_methods_are_refused(served: Served, method: bytes) -> None:
    assert_refused(*served, method + b" / HTTP/1.1\r\n" + HOST + b"\r\n", 400)


@pytest.mark.parametrize(
    "version",
    [
        b"HTTP/1.1 ",
        b"HTTP/1",
        b"HTTP/01.1",
        b"http/1.1",
        b"HTTP/1.10",
        b"HTTP/111",
        b"HTTP/1.1.1",
        b"FTP/1.1",
        b"HTTP/0.99",
    ],
)
def test_malformed_version_is_refused(served: Served, version: bytes) -> None:
    assert_refused(*served, b"GET / " + version + b"\r\n" + HOST + b"\r\n", 400)


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/9.9", b"HTTP/1.2"])
def test_well_formed_unsupported_version_gets_505(served: Served, version: bytes) -> None:
    assert_refused(*served, b"GET / " + version + b"\r\n" + HOST + b"\r\n", 505)


def test_http_0_9_request_line_is_refused(served: Served) -> None:
    assert_refused(*served, b"GET /\r\n\r\n", 400)


@pytest.mark.parametrize(
    "line", [b"GET\t/\tHTTP/1.1", b"GET /a b HTTP/1.1", b"GET /?x=y z HTTP/1.1"]
)
def test_request_line_with_stray_whitespace_is_refused(served: Served, line: bytes) -> None:
    assert_refused(*served, line + b"\r\n" + HOST + b"\r\n", 400)


def test_absolute_form_target_is_accepted_and_its_authority_is_the_host(served: Served) -> None:
    server, app = served
    data = b"GET http://a.example/p?q HTTP/1.1\r\nHost: b.example\r\n\r\n"
    [response] = exchange(server, data, 1)
    assert response.status == 200
    seen = app.requests[0]
    assert (seen.path, seen.query_string) == ("/p", b"q")
    assert seen.headers == [(b"host", b"a.example")]


def test_absolute_form_target_with_userinfo_is_refused(served: Served) -> None:
    assert_refused(*served, b"GET http://u@a.example/p HTTP/1.1\r\nHost: a.example\r\n\r\n", 400)


@pytest.mark.parametrize(
    "line",
    [
        b"GET example.com:443 HTTP/1.1",
        b"GET * HTTP/1.1",
        b"POST * HTTP/1.1",
        b"GET foo/bar HTTP/1.1",
        b"GET /p#frag HTTP/1.1",
    ],
    ids=["authority-form", "asterisk-get", "asterisk-post", "relative", "fragment"],
)
def test_target_form_the_method_does_not_allow_is_refused(served: Served, line: bytes) -> None:
    assert_refused(*served, line + b"\r\n" + HOST + b"\r\n", 400)


def test_options_asterisk_is_accepted(served: Served) -> None:
    server, app = served
    [response] = exchange(server, b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n", 1)
    assert response.status == 200
    assert app.requests[0].path == "*"


def test_connect_is_refused_and_never_tunnels(served: Served) -> None:
    data = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    assert_refused(*served, data + b"GET /tunnelled HTTP/1.1\r\nHost: t\r\n\r\n", 501)


@pytest.mark.parametrize("target", [b"/\x00", b"/\x7f", b"/\xff\xfe", b"/\x1b[31m"])
def test_raw_control_or_non_ascii_bytes_in_the_target_are_refused(
    served: Served, target: bytes
) -> None:
    assert_refused(*served, b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n", 400)


def test_percent_encoded_bytes_in_the_target_pass_verbatim_in_raw_path(served: Served) -> None:
    server, app = served
    exchange(server, b"GET /%c0%af%0d%0a HTTP/1.1\r\n" + HOST + b"\r\n", 1)
    assert app.requests[0].raw_path == b"/%c0%af%0d%0a"


def test_empty_lines_before_the_request_line_are_skipped(served: Served) -> None:
    server, app = served
    [response] = exchange(server, b"\r\n" * 100_000 + GET + HOST + b"\r\n", 1)
    assert response.status == 200
    assert app.paths() == ["/", "/probe"]


@pytest.mark.parametrize(
    "data",
    [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"x" * 100_000],
    ids=["tls-hello", "junk"],
)
def test_garbage_is_refused(served: Served, data: bytes) -> None:
    assert_refused(*served, data, 400)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (b"Host: known.example\r\nHost: known.example\r\n", 400),
        (b"Host: known.example\r\nTransfer-Encoding: gzip\r\n", 400),
        (b"Transfer-Encoding: gzip, chunked\r\nHost: known.example\r\n", 501),
    ],
    ids=["host-twice", "host-then-bad-coding", "bad-coding-then-host"],
)
def test_a_known_host_does_not_skip_the_other_field_checks(
    served: Served, fields: bytes, status: int
) -> None:
    # Requests whose only checked field is a known valid Host skip check_fields: with
    # that Host known, any other checked field must still be checked.
    server, app = served
    [response] = exchange(server, GET + b"Host: known.example\r\n\r\n", 1)
    assert response.status == 200
    app.requests.clear()
    assert_refused(*served, GET + fields + b"\r\n", status)
