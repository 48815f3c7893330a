"""Hostile-input checklist 2.1: HTTP/1.1 framing and request smuggling (RFC 9112 §6, §7)."""

from __future__ import annotations

import pytest

from tests.conformance.recording_app import RecordingApp
from tests.conformance.wire import HOST, assert_refused, assert_still_serving, exchange
from tests.harness import RunningServer

Served = tuple[RunningServer, RecordingApp]

POST = b"POST / HTTP/1.1\r\n" + HOST
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "data",
    [
        POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX",
        POST
        + b"Transfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n"
        + b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
    ids=["CL-then-TE", "TE-then-CL", "TE.CL-desync"],
)
def test_content_length_with_transfer_encoding_is_refused(served: Served, data: bytes) -> None:
    assert_refused(*served, data, 400)


@pytest.mark.parametrize(
    "lines",
    [
        b"Content-Length: 3\r\nContent-Length: 2\r\n",
        b"Content-Length: 5\r\nContent-Length: 5\r\n",
        b"Content-Length: 5, 5\r\n",
        b"Content-Length: 3, 2\r\n",
    ],
    ids=["differing", "identical", "list-identical", "list-differing"],
)
def test_repeated_content_length_is_refused(served: Served, lines: bytes) -> None:
    assert_refused(*served, POST + lines + b"\r\nhello", 400)


@pytest.mark.parametrize(
    "value",
    # The last is ARABIC-INDIC DIGIT FIVE, which Python's int() accepts.
    [b"+5", b"-1", b"-0", b"0x5", b"5_0", b"0 1", b"3 1", b"", b"1e3", "\u0665".encode()],
)
def test_content_length_that_is_not_digits_is_refused(served: Served, value: bytes) -> None:
    assert_refused(*served, POST + b"Content-Length: " + value + b"\r\n\r\nhello", 400)


@pytest.mark.parametrize("digits", [26, 5000])
def test_huge_content_length_is_refused_without_overflow(served: Served, digits: int) -> None:
    assert_refused(*served, POST + b"Content-Length: " + b"9" * digits + b"\r\n\r\n", 400)


@pytest.mark.parametrize(
    "value",
    [
        b"chunked, gzip",
        b"gzip",
        b"identity",
        b"foo",
        b"xchunked",
        b"chunked123",
        b",chunked",
        b"chunked, chunked",
        b"\x0bchunked",
        b"\x0cchunked",
    ],
)
def test_transfer_encoding_other_than_final_chunked_is_refused(
    served: Served, value: bytes
) -> None:
    data = POST + b"Transfer-Encoding: " + value + b"\r\n\r\n0\r\n\r\n"
    assert_refused(*served, data, 400)


def test_transfer_coding_the_server_does_not_implement_gets_501(served: Served) -> None:
    data = POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    assert_refused(*served, data, 501)


def test_unimplemented_coding_on_a_second_transfer_encoding_line_gets_501(served: Served) -> None:
    data = POST + b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert_refused(*served, data, 501)


def test_chunked_on_two_transfer_encoding_lines_is_refused(served: Served) -> None:
    data = POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert_refused(*served, data, 400)


def test_nul_in_transfer_encoding_name_is_refused(served: Served) -> None:
    assert_refused(*served, POST + b"Transfer-Encoding\x00: chunked\r\n\r\n0\r\n\r\n", 400)


# llhttp also refuses a trailing HTAB after chunked (400), stricter than RFC 9110 §5.5 needs.
@pytest.mark.parametrize("value", [b"CHUNKED", b"Chunked", b"chunked ", b" chunked"])
def test_chunked_in_any_case_and_with_whitespace_is_chunked(served: Served, value: bytes) -> None:
    server, app = served
    data = POST + b"Transfer-Encoding:" + value + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    [response] = exchange(server, data, 1)
    assert response.status == 200
    assert app.requests[0].body == b"hello"
    assert app.paths() == ["/", "/probe"]


def test_transfer_encoding_in_http_1_0_is_refused(served: Served) -> None:
    data = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert_refused(*served, data, 400)


@pytest.mark.parametrize(
    "body",
    [
        b"FFFFFFFFFFFFFFFFF\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5_0\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b";foo=bar\r\n",
    ],
    ids=[
        "overflow",
        "0x",
        "plus",
        "minus",
        "leading-space",
        "trailing-space",
        "underscore",
        "empty",
        "extension-without-size",
    ],
)
def test_invalid_chunk_size_is_refused(served: Served, body: bytes) -> None:
    assert_refused(*served, CHUNKED + body, 400, body_refused=True)


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nAAAAAXX2\r\n0\r\n\r\n",
        b"5\r\nhello world\r\n0\r\n\r\n",
        b"5\nhello\n0\n\n",
        b"0\r\n\n",
        b"5;a\rX\r\nhello\r\n0\r\n\r\n",
        b"5;\nGET /smuggled HTTP/1.1\r\n\r\n",
        b"5;\x00ext\r\nhello\r\n0\r\n\r\n",
        b"5;\r\nhello\r\n0\r\n\r\n",
        b"5;[\r\nhello\r\n0\r\n\r\n",
    ],
    ids=[
        "spill",
        "oversized-data",
        "bare-lf",
        "bare-lf-last",
        "ext-bare-cr",
        "ext-bare-lf",
        "ext-nul",
        "ext-empty",
        "ext-not-token",
    ],
)
def test_invalid_chunk_framing_is_refused(served: Served, body: bytes) -> None:
    response = assert_refused(*served, CHUNKED + body, 400, body_refused=True)
    assert response.status == 400


def test_chunk_extension_flood_is_bounded(served: Served) -> None:
    server, app = served
    data = CHUNKED + b"5" + b";a=b" * 20_000 + b"\r\nhello\r\n0\r\n\r\n"
    [response] = exchange(server, data, 1)
    assert response.status == 200
    assert app.requests[0].body == b"hello"


@pytest.mark.parametrize(
    "trailer",
    [b"Host: evil\r\n", b"Authorization: x\r\n", b"X-Forwarded-For: 10.0.0.1\r\n"],
)
def test_trailer_fields_never_reach_the_request_head(served: Served, trailer: bytes) -> None:
    server, app = served
    data = CHUNKED + b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n"
    [response] = exchange(server, data, 1)
    assert response.status == 200
    assert app.requests[0].headers == [(b"host", b"t"), (b"transfer-encoding", b"chunked")]
    assert app.requests[0].body == b"hello"


@pytest.mark.parametrize("trailer", [b"Content-Length: 50\r\n", b"Transfer-Encoding: chunked\r\n"])
def test_framing_trailer_is_refused(served: Served, trailer: bytes) -> None:
    data = CHUNKED + b"0\r\n" + trailer + b"\r\n"
    assert_refused(*served, data, 400, body_refused=True)


@pytest.mark.parametrize("body", [b"0\r\n", b"5\r\nhel"], ids=["no-final-crlf", "mid-chunk"])
def test_truncated_chunked_body_is_never_complete(served: Served, body: bytes) -> None:
    server, app = served
    with server.connect() as client:
        client.send(CHUNKED + body)
        client.sock.shutdown(1)  # SHUT_WR: the client is done
        client.read_all()
    assert len(app.requests) == 1
    assert not app.requests[0].body_complete
    assert_still_serving(server, app)


def test_body_of_a_get_is_consumed_not_parsed_as_a_request(served: Served) -> None:
    server, app = served
    data = b"GET /a HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nhello"
    [response] = exchange(server, data, 1)
    assert response.body == b"GET /a"
    assert app.paths() == ["/a", "/probe"]
    assert app.requests[0].body == b"hello"
