"""The shared ASGI helpers: path decoding, response checks and fixed error responses."""

from __future__ import annotations

import pytest

from hasten.asgi import (
    ClientDisconnected,
    check_response_header,
    check_response_status,
    decode_path,
    encode_headers,
    plain_response,
    status_line,
)


def test_decode_path_decodes_percent_escapes_as_utf8() -> None:
    assert decode_path(b"/caf%C3%A9/%20x") == "/café/ x"


def test_decode_path_leaves_a_path_without_escapes_alone() -> None:
    assert decode_path(b"/plain/path") == "/plain/path"


def test_decode_path_refuses_raw_non_ascii_bytes() -> None:
    with pytest.raises(UnicodeDecodeError):
        decode_path(b"/caf\xc3\xa9")


@pytest.mark.parametrize("name", [b"x-a", b"Content-Type", b"x!#$%&'*+-.^_`|~1"])
def test_check_response_header_accepts_tokens(name: bytes) -> None:
    check_response_header(name, b"any value\tworks")


@pytest.mark.parametrize("name", [b"", b"x a", b"x:a", b"x\ra", b"x\na", b"x\x00", b"\xff"])
def test_check_response_header_refuses_invalid_names(name: bytes) -> None:
    with pytest.raises(RuntimeError, match="header name"):
        check_response_header(name, b"1")


@pytest.mark.parametrize("value", [b"a\rb", b"a\nb", b"a\x00b", b"\r\nX-Injected: 1"])
def test_check_response_header_refuses_cr_lf_nul_in_values(value: bytes) -> None:
    with pytest.raises(RuntimeError, match="CR, LF or NUL"):
        check_response_header(b"x-a", value)


@pytest.mark.parametrize(("name", "value"), [("x-a", b"1"), (b"x-a", "1"), (None, b"1")])
def test_check_response_header_refuses_non_bytes(name: object, value: object) -> None:
    with pytest.raises(RuntimeError, match="bytes"):
        check_response_header(name, value)


@pytest.mark.parametrize("status", [200, 204, 404, 599])
def test_check_response_status_accepts_final_statuses(status: int) -> None:
    assert check_response_status(status) == status


@pytest.mark.parametrize("status", [99, 100, 101, 199, 600, 1000, "200", 200.0, True, None])
def test_check_response_status_refuses_the_rest(status: object) -> None:
    with pytest.raises(RuntimeError, match="status"):
        check_response_status(status)


def test_status_line_has_the_reason_phrase() -> None:
    assert status_line(404) == b"HTTP/1.1 404 Not Found\r\n"


def test_status_line_for_an_unregistered_code_has_an_empty_phrase() -> None:
    assert status_line(299) == b"HTTP/1.1 299 \r\n"


def test_plain_response_is_a_complete_closing_response() -> None:
    response = plain_response(400)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head
    assert body == b"Bad Request\n"


def test_plain_response_can_keep_the_connection() -> None:
    assert b"connection" not in plain_response(503, close=False)


def test_encode_headers_joins_lines() -> None:
    assert encode_headers([(b"a", b"1"), (b"b", b"2")]) == b"a: 1\r\nb: 2\r\n"


def test_client_disconnected_is_an_oserror() -> None:
    assert issubclass(ClientDisconnected, OSError)
