"""The request checks of hasten.protocols.http1.checks as pure functions (no sockets)."""

from __future__ import annotations

import pytest

from hasten import Config
from hasten.asgi import HTTPRequestError
from hasten.config import settings_view
from hasten.protocols.http1.checks import (
    RequestLimits,
    absolute_form_authority,
    check_fields,
    check_request_target,
    check_transfer_codings,
    field_limit_error,
    known_target,
    split_target,
)

LIMITS = RequestLimits(
    limit_request_line=100,
    limit_request_fields=10,
    limit_request_field_size=50,
    limit_request_headers_size=200,
    limit_request_body=1000,
    limit_pipelined_requests=4,
)


def status_of(call: object, *args: object) -> int | None:
    assert callable(call)
    try:
        call(*args)
    except HTTPRequestError as exc:
        return exc.status
    return None


@pytest.mark.parametrize(
    ("codings", "status"),
    [
        ([b"chunked"], None),
        ([b"gzip", b"chunked"], 501),
        ([b"identity", b"chunked"], 501),
        ([b"chunked", b"gzip"], 400),
        ([b"gzip"], 400),
        ([b"", b"chunked"], 400),
        ([b"chunked", b"chunked"], 400),
    ],
)
def test_transfer_codings(codings: list[bytes], status: int | None) -> None:
    assert status_of(check_transfer_codings, codings, "1.1") == status


def test_transfer_encoding_in_http_1_0_is_refused() -> None:
    assert status_of(check_transfer_codings, [b"chunked"], "1.0") == 400


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"host", b"a")], None),
        ([], 400),
        ([(b"host", b"a"), (b"host", b"a")], 400),
        ([(b"host", b"a b")], 400),
        ([(b"host", b"[::1]:8000")], None),
        ([(b"host", b"a"), (b"content-length", b"1000")], None),
        ([(b"host", b"a"), (b"content-length", b"1001")], 413),
        ([(b"host", b"a"), (b"transfer-encoding", b"gzip")], 400),
    ],
)
def test_fields(headers: list[tuple[bytes, bytes]], status: int | None) -> None:
    assert status_of(check_fields, headers, "1.1", LIMITS, None) == status


def test_http_1_0_needs_no_host() -> None:
    assert status_of(check_fields, [], "1.0", LIMITS, None) is None


def test_absolute_form_authority_replaces_host() -> None:
    headers = [(b"host", b"b.example"), (b"accept", b"*/*")]
    authority = absolute_form_authority(b"http://a.example:8080/p?q")
    assert authority == b"a.example:8080"
    check_fields(headers, "1.1", LIMITS, authority)
    assert headers == [(b"host", b"a.example:8080"), (b"accept", b"*/*")]


@pytest.mark.parametrize(
    ("target", "authority"),
    [(b"/p", None), (b"*", None), (b"http://h", b"h"), (b"http://h?q", b"h"), (b"h:80", None)],
)
def test_absolute_form_authority(target: bytes, authority: bytes | None) -> None:
    assert absolute_form_authority(target) == authority


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        (b"OPTIONS", b"*", None),
        (b"GET", b"*", 400),
        (b"GET", b"/p#f", 400),
        (b"GET", b"/p?q", None),
    ],
)
def test_request_target(method: bytes, target: bytes, status: int | None) -> None:
    assert status_of(check_request_target, method, target) == status


@pytest.mark.parametrize(
    ("target", "split"),
    [
        (b"/", (b"/", b"", "/")),
        (b"/a%20b?x=1&y", (b"/a%20b", b"x=1&y", "/a b")),
        (b"/p?", (b"/p", b"", "/p")),
        (b"http://example.com:8080/p?q", (b"/p", b"q", "/p")),
        (b"http://example.com", (b"/", b"", "/")),
    ],
)
def test_split_target(target: bytes, split: tuple[bytes, bytes, str]) -> None:
    assert split_target(b"GET", target) == split


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [(b"GET", b"/p#f", 400), (b"GET", b"*", 400), (b"GET", b"/caf\xc3\xa9", 400)],
)
def test_split_target_refuses(method: bytes, target: bytes, status: int) -> None:
    assert status_of(split_target, method, target) == status
    assert known_target(target) is None


def test_split_target_remembers_short_origin_form_targets_only() -> None:
    short = b"/remembered?q=1"
    long = b"/" + b"x" * 300
    absolute = b"http://example.com/remembered-absolute"
    for target in (short, long, absolute):
        split_target(b"GET", target)
    assert known_target(short) == (b"/remembered", b"q=1", "/remembered")
    assert known_target(long) is None
    assert known_target(absolute) is None


def test_field_limit_error_names_the_limit_passed() -> None:
    assert "fields" in field_limit_error(11, 5, LIMITS).reason
    assert "field is larger" in field_limit_error(3, 51, LIMITS).reason
    assert "head larger" in field_limit_error(3, 5, LIMITS).reason
    assert field_limit_error(3, 5, LIMITS).status == 431


def test_limits_come_from_the_settings() -> None:
    config = Config(app="m:a", limit_request_line=10, limit_request_body=5)
    limits = settings_view(RequestLimits, config)
    assert limits.limit_request_line == 10
    assert limits.limit_request_body == 5
    assert limits.limit_request_fields == 100


@pytest.mark.parametrize(
    "setting", ["limit_request_line", "limit_request_body", "timeout_request_header"]
)
def test_limits_must_be_positive(setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        Config(app="m:a", **{setting: 0})
