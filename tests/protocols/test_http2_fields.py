"""The fields of an HTTP/2 request, checked and sorted (http2/fields.py), and the reuse of
the last request's result when a client repeats its fields."""

from __future__ import annotations

import pytest

from hasten.protocols.http2.fields import MalformedRequest, parse_request_fields

GET = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":path", b"/a?b"),
    (b":authority", b"example.com"),
    (b"cookie", b"a=1"),
    (b"accept", b"*/*"),
    (b"cookie", b"b=2"),
]


def test_fields_are_sorted_into_the_request_line_and_asgi_headers() -> None:
    fields = parse_request_fields(GET, extended_connect=False, previous=None)
    assert (fields.method, fields.target, fields.authority, fields.protocol) == (
        b"GET",
        b"/a?b",
        b"example.com",
        b"",
    )
    assert fields.headers == [
        (b"host", b"example.com"),
        (b"accept", b"*/*"),
        (b"cookie", b"a=1; b=2"),
    ]


def test_the_same_fields_again_give_the_same_request() -> None:
    first = parse_request_fields(GET, extended_connect=False, previous=None)
    assert parse_request_fields(list(GET), extended_connect=False, previous=first) is first


def test_other_fields_are_checked_again() -> None:
    first = parse_request_fields(GET, extended_connect=False, previous=None)
    bad = [*GET[:5], (b"accept", b"*/*\r\nx: y"), GET[6]]
    with pytest.raises(MalformedRequest):
        parse_request_fields(bad, extended_connect=False, previous=first)
    other = [(bytes(name), bytes(value)) for name, value in GET]
    other[2] = (b":path", b"/other")
    assert parse_request_fields(other, extended_connect=False, previous=first).target == b"/other"
