"""The static-files decision, without a server: a request's method, path and headers against a
mount table become a status, headers and (for a body) an open file and a byte range."""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hasten import Config
from hasten.settings import SettingValueError
from hasten.sources import SettingsError, resolve_settings
from hasten.static import Decision, StaticFiles, not_found, resolve_path
from hasten.static_fields import (
    UNSATISFIABLE,
    ByteRange,
    coding_weight,
    format_http_date,
    parse_accept_encoding,
    parse_range,
)
from tests.static_support import HOSTILE_PATHS, TEXT, brotli_stored, make_tree

Headers = dict[str, str]


@pytest.fixture
def public(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def files(public: Path) -> StaticFiles:
    return StaticFiles([("/static", str(public))], dir_to_file="index.html", expires=3600)


@pytest.fixture(autouse=True)
def no_leaked_descriptors() -> Iterator[None]:
    before = set(os.listdir("/proc/self/fd"))
    yield
    assert set(os.listdir("/proc/self/fd")) <= before


def decide(
    files: StaticFiles, path: bytes | str, headers: Headers | None = None, method: str = "GET"
) -> Decision:
    raw = path.encode() if isinstance(path, str) else path
    pairs = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    decision = files.decide(method, raw, pairs)
    assert decision is not None
    return decision


def body_of(decision: Decision) -> bytes:
    """The bytes a server would send for ``decision`` (and its descriptor closed)."""
    if decision.fd is None:
        return decision.body
    try:
        return os.pread(decision.fd, decision.count, decision.offset)
    finally:
        os.close(decision.fd)


def header(decision: Decision, name: str) -> str | None:
    values = [value.decode() for key, value in decision.headers if key == name.encode()]
    assert len(values) <= 1, values
    return values[0] if values else None


# -- routing --------------------------------------------------------------------------------


def test_paths_under_no_route_are_left_to_the_app(files: StaticFiles) -> None:
    for path in (b"/", b"/staticx/a.txt", b"/other/static/a.txt", b"/stati"):
        assert files.decide("GET", path, []) is None


def test_the_longest_route_wins(public: Path) -> None:
    files = StaticFiles(
        [("/s", str(public)), ("/s/sub/", str(public / "sub"))], dir_to_file=None, expires=0
    )
    assert body_of(decide(files, "/s/sub/index.html")) == b"<h1>index</h1>\n"
    assert body_of(decide(files, "/s/a.txt")) == TEXT


def test_methods_other_than_get_and_head_get_405_with_allow(files: StaticFiles) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "get"):
        decision = decide(files, "/static/a.txt", method=method)
        assert decision.status == 405
        assert header(decision, "allow") == "GET, HEAD"


# -- what is served -------------------------------------------------------------------------


def test_a_file_is_served_with_its_type_validators_and_cache_headers(files: StaticFiles) -> None:
    decision = decide(files, "/static/a.txt")
    assert decision.status == 200
    assert header(decision, "content-type") == "text/plain; charset=utf-8"
    assert header(decision, "content-length") == str(len(TEXT))
    assert header(decision, "accept-ranges") == "bytes"
    assert header(decision, "cache-control") == "max-age=3600"
    assert header(decision, "expires") is not None
    assert header(decision, "last-modified") is not None
    etag = header(decision, "etag")
    assert etag is not None and etag.startswith('"') and not etag.startswith("W/")
    assert body_of(decision) == TEXT


def test_head_has_the_get_headers_and_no_file(files: StaticFiles) -> None:
    get = decide(files, "/static/a.txt")
    body_of(get)
    head = decide(files, "/static/a.txt", method="HEAD")
    assert head.fd is None and head.body == b""
    assert head.headers == get.headers


def test_expires_zero_sends_no_caching_headers(public: Path) -> None:
    files = StaticFiles([("/static", str(public))], dir_to_file=None, expires=0)
    decision = decide(files, "/static/a.txt")
    body_of(decision)
    assert header(decision, "cache-control") is None
    assert header(decision, "expires") is None


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("plain.bin", "application/octet-stream"),
        ("sub/index.html", "text/html; charset=utf-8"),
        ("archive.tar.gz", "application/gzip"),
    ],
)
def test_content_type_comes_from_the_name(files: StaticFiles, name: str, content_type: str) -> None:
    decision = decide(files, f"/static/{name}")
    body_of(decision)
    assert header(decision, "content-type") == content_type
    # A .tar.gz is a gzip file served as is, never labelled as a content coding of a tar.
    assert header(decision, "content-encoding") is None


def test_a_directory_serves_its_index_file(files: StaticFiles) -> None:
    for path in ("/static/sub/", "/static/sub"):
        assert body_of(decide(files, path)) == b"<h1>index</h1>\n"


def test_a_directory_without_dir_to_file_is_404(public: Path) -> None:
    files = StaticFiles([("/static", str(public))], dir_to_file=None, expires=0)
    assert decide(files, "/static/sub/") == not_found()
    assert decide(files, "/static") == not_found()


def test_symlinks_inside_the_mount_are_followed(files: StaticFiles) -> None:
    assert body_of(decide(files, "/static/inside-link.txt")) == TEXT


@pytest.mark.parametrize("path", HOSTILE_PATHS, ids=lambda path: path.decode("latin-1"))
def test_every_refusal_is_the_same_404_as_a_missing_file(files: StaticFiles, path: bytes) -> None:
    assert decide(files, path) == not_found()


def test_the_404_says_nothing_about_the_file_system(files: StaticFiles) -> None:
    decision = not_found()
    assert decision.status == 404
    assert decision.body == b"Not Found\n"
    assert {name for name, _ in decision.headers} == {b"content-type", b"content-length"}


# -- conditional requests (RFC 9110 §13) ---------------------------------------------------


def etag_of(files: StaticFiles, path: str = "/static/a.txt", headers: Headers | None = None) -> str:
    decision = decide(files, path, headers)
    body_of(decision)
    etag = header(decision, "etag")
    assert etag is not None
    return etag


def test_if_none_match_with_the_current_etag_is_304(files: StaticFiles) -> None:
    etag = etag_of(files)
    for value in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        decision = decide(files, "/static/a.txt", {"If-None-Match": value})
        assert decision.status == 304, value
        assert decision.fd is None and decision.body == b""
        # RFC 9110 §15.4.5: the fields a 200 would carry for caches.
        assert header(decision, "etag") == etag
        assert header(decision, "vary") == "accept-encoding"
        assert header(decision, "cache-control") == "max-age=3600"
        assert header(decision, "content-length") is None


def test_if_none_match_with_another_etag_is_200(files: StaticFiles) -> None:
    for value in ('"nope"', "garbage", 'W/"nope"'):
        assert body_of(decide(files, "/static/a.txt", {"If-None-Match": value})) == TEXT


def test_if_modified_since_is_304_unless_modified_after(files: StaticFiles) -> None:
    later = format_http_date(time.time() + 10).decode()
    earlier = format_http_date(time.time() - 86400).decode()
    assert decide(files, "/static/a.txt", {"If-Modified-Since": later}).status == 304
    assert body_of(decide(files, "/static/a.txt", {"If-Modified-Since": earlier})) == TEXT
    assert body_of(decide(files, "/static/a.txt", {"If-Modified-Since": "yesterday"})) == TEXT


def test_if_none_match_takes_precedence_over_if_modified_since(files: StaticFiles) -> None:
    later = format_http_date(time.time() + 10).decode()
    headers = {"If-None-Match": '"other"', "If-Modified-Since": later}
    assert body_of(decide(files, "/static/a.txt", headers)) == TEXT


def test_failed_if_match_or_if_unmodified_since_is_412(files: StaticFiles) -> None:
    earlier = format_http_date(time.time() - 86400).decode()
    assert decide(files, "/static/a.txt", {"If-Match": '"other"'}).status == 412
    assert decide(files, "/static/a.txt", {"If-Unmodified-Since": earlier}).status == 412
    etag = etag_of(files)
    assert body_of(decide(files, "/static/a.txt", {"If-Match": etag})) == TEXT


# -- ranges (RFC 9110 §14) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        ("bytes=0-4", 0, 4),
        ("bytes=10-", 10, len(TEXT) - 1),
        ("bytes=-5", len(TEXT) - 5, len(TEXT) - 1),
        ("bytes=5-999999", 5, len(TEXT) - 1),
        ("BYTES = 1-1", 1, 1),
    ],
)
def test_a_single_range_is_206(files: StaticFiles, value: str, start: int, end: int) -> None:
    decision = decide(files, "/static/a.txt", {"Range": value})
    assert decision.status == 206
    assert header(decision, "content-range") == f"bytes {start}-{end}/{len(TEXT)}"
    assert header(decision, "content-length") == str(end - start + 1)
    assert body_of(decision) == TEXT[start : end + 1]


def test_an_unsatisfiable_range_is_416_with_the_size(files: StaticFiles) -> None:
    for value in (f"bytes={len(TEXT)}-", "bytes=99999-100000", "bytes=-0"):
        decision = decide(files, "/static/a.txt", {"Range": value})
        assert decision.status == 416, value
        assert header(decision, "content-range") == f"bytes */{len(TEXT)}"


def test_several_ranges_or_invalid_ones_get_the_whole_file(files: StaticFiles) -> None:
    for value in ("bytes=0-1,3-4", "bytes=5-1", "items=0-1", "bytes=a-b", "bytes=--1"):
        decision = decide(files, "/static/a.txt", {"Range": value})
        assert decision.status == 200, value
        assert body_of(decision) == TEXT


def test_head_ignores_range(files: StaticFiles) -> None:
    decision = decide(files, "/static/a.txt", {"Range": "bytes=0-4"}, method="HEAD")
    assert decision.status == 200
    assert header(decision, "content-length") == str(len(TEXT))


def test_if_range_applies_the_range_only_while_the_etag_matches(files: StaticFiles) -> None:
    etag = etag_of(files)
    matching = decide(files, "/static/a.txt", {"Range": "bytes=0-4", "If-Range": etag})
    assert matching.status == 206
    body_of(matching)
    for stale in ('"other"', f"W/{etag}"):
        decision = decide(files, "/static/a.txt", {"Range": "bytes=0-4", "If-Range": stale})
        assert decision.status == 200
        assert body_of(decision) == TEXT


def test_if_range_with_a_date_needs_an_exact_strong_last_modified(public: Path) -> None:
    old = time.time() - 3600
    os.utime(public / "plain.bin", (old, old))
    files = StaticFiles([("/static", str(public))], dir_to_file=None, expires=0)
    exact = format_http_date(int(old)).decode()
    decision = decide(files, "/static/plain.bin", {"Range": "bytes=0-1", "If-Range": exact})
    assert decision.status == 206
    body_of(decision)
    other = format_http_date(int(old) + 5).decode()
    decision = decide(files, "/static/plain.bin", {"Range": "bytes=0-1", "If-Range": other})
    assert decision.status == 200
    body_of(decision)


# -- precompressed siblings (RFC 9110 §12.5.3) ---------------------------------------------


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        (None, None),
        ("gzip, br", "br"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("br;q=0.5, gzip", "gzip"),
        ("*", "br"),
        ("br;q=0, *;q=0.1", "gzip"),
        ("identity", None),
        ("gzip;q=0.5, identity", None),
        ("", None),
        ("gzip, identity;q=0", "gzip"),
        ("identity;q=0", None),  # nothing acceptable: the default representation
        ("*;q=0", None),
        ("gzip;q=2", None),  # a malformed qvalue drops the item
    ],
)
def test_the_sibling_is_chosen_by_accept_encoding(
    files: StaticFiles, accept: str | None, coding: str | None
) -> None:
    decision = decide(files, "/static/a.txt", {} if accept is None else {"Accept-Encoding": accept})
    assert header(decision, "content-encoding") == coding
    # The response could have varied whatever was chosen.
    assert header(decision, "vary") == "accept-encoding"
    assert header(decision, "content-type") == "text/plain; charset=utf-8"
    body = body_of(decision)
    if coding == "gzip":
        assert gzip.decompress(body) == TEXT
    elif coding == "br":
        assert body == brotli_stored(TEXT)
    else:
        assert body == TEXT


def test_each_encoding_has_its_own_etag(files: StaticFiles) -> None:
    tags = {
        etag_of(files, headers={"Accept-Encoding": accept}) for accept in ("identity", "gzip", "br")
    }
    assert len(tags) == 3
    gzip_tag = etag_of(files, headers={"Accept-Encoding": "gzip"})
    identity = decide(files, "/static/a.txt", {"If-None-Match": gzip_tag})
    assert identity.status == 200
    body_of(identity)


def test_a_file_without_siblings_does_not_vary(files: StaticFiles) -> None:
    decision = decide(files, "/static/plain.bin", {"Accept-Encoding": "gzip, br"})
    body_of(decision)
    assert header(decision, "vary") is None
    assert header(decision, "content-encoding") is None


def test_a_sibling_alone_is_not_a_file(public: Path, files: StaticFiles) -> None:
    (public / "a.txt").unlink()
    assert decide(files, "/static/a.txt", {"Accept-Encoding": "gzip"}) == not_found()


def test_a_range_of_a_sibling_is_a_range_of_its_bytes(files: StaticFiles) -> None:
    headers = {"Accept-Encoding": "gzip", "Range": "bytes=0-1"}
    decision = decide(files, "/static/a.txt", headers)
    assert decision.status == 206
    assert body_of(decision) == b"\x1f\x8b"


# -- settings -------------------------------------------------------------------------------


def test_routes_and_mounts_must_pair_up(public: Path) -> None:
    with pytest.raises(SettingValueError, match="static_path_route has 2 value"):
        Config(app="m:a", static_path_route=["/a", "/b"], static_path_mount=[str(public)])


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"static_path_route": ["static"]}, "static_path_route"),
        ({"static_path_route": ["/a b"]}, "static_path_route"),
        ({"static_path_mount": ["/nonexistent/dir"]}, "static_path_mount"),
        ({"static_path_dir_to_file": "../index.html"}, "static_path_dir_to_file"),
        ({"static_path_dir_to_file": ".index"}, "static_path_dir_to_file"),
        ({"static_path_expires": -1}, "static_path_expires"),
    ],
)
def test_bad_static_settings_are_refused_by_name(
    public: Path, changes: dict[str, object], setting: str
) -> None:
    values: dict[str, object] = {"static_path_mount": [str(public)], **changes}
    with pytest.raises(SettingValueError) as caught:
        Config(app="m:a", **values)  # type: ignore[arg-type]
    assert caught.value.setting == setting


def test_a_mount_that_is_a_file_names_the_setting_and_its_source(public: Path) -> None:
    with pytest.raises(SettingsError, match=r"static_path_mount=.*\(from command line\)"):
        resolve_settings({"app": "m:a", "static_path_mount": [str(public / "a.txt")]}, environ={})


def test_one_mount_defaults_to_the_static_route(public: Path) -> None:
    config = Config(app="m:a", static_path_mount=[str(public)])
    files = StaticFiles.from_config(config)
    assert [mount.prefix for mount in files.mounts] == [b"/static"]


# -- never an exception ---------------------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(st.binary(max_size=40), st.integers(min_value=0, max_value=2**70))
def test_any_range_header_is_a_decision(value: bytes, size: int) -> None:
    check_range_decision(value, size)


def check_range_decision(value: bytes, size: int) -> None:
    wanted = parse_range(value, size)
    if isinstance(wanted, ByteRange):
        assert 0 <= wanted.start < size
        assert 1 <= wanted.count <= size - wanted.start
    else:
        assert wanted is None or wanted is UNSATISFIABLE


@FUZZ
@given(st.from_regex(rb"\A(bytes=)?[0-9,\- ]{0,30}\Z"), st.integers(min_value=0, max_value=10**6))
def test_any_range_spec_of_digits_is_a_decision(value: bytes, size: int) -> None:
    check_range_decision(value, size)


@FUZZ
@given(st.binary(max_size=60))
def test_any_accept_encoding_is_a_weight(value: bytes) -> None:
    weights = parse_accept_encoding(value)
    for coding in (b"br", b"gzip", b"identity"):
        assert 0 <= coding_weight(weights, coding) <= 1


PATH_PIECES = st.lists(
    st.sampled_from(
        [
            b"/",
            b"..",
            b".",
            b"%2e",
            b"%2f",
            b"%5c",
            b"%00",
            b"\\",
            b"\x00",
            b"a.txt",
            b"sub",
            b"escape",
            b"%",
            b"%zz",
            b".env",
            b"index.html",
            b"\xff",
            b"fifo",
            b"dot-link.txt",
        ]
    ),
    max_size=8,
).map(b"".join)


@FUZZ
@given(st.one_of(st.binary(max_size=40), PATH_PIECES))
def test_any_path_resolves_to_safe_segments_or_nothing(rest: bytes) -> None:
    resolved = resolve_path(rest)
    if resolved is not None:
        for segment in resolved[0]:
            assert segment and not segment.startswith(".")
            assert "/" not in segment and "\\" not in segment and "\x00" not in segment


@FUZZ
@given(
    path=st.one_of(st.binary(max_size=40), PATH_PIECES),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    values=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    b"range",
                    b"if-range",
                    b"if-none-match",
                    b"if-match",
                    b"if-modified-since",
                    b"if-unmodified-since",
                    b"accept-encoding",
                ]
            ),
            st.binary(max_size=30),
        ),
        max_size=4,
    ),
)
def test_any_request_under_a_route_is_a_decision(
    tmp_path_factory: pytest.TempPathFactory,
    path: bytes,
    method: str,
    values: list[tuple[bytes, bytes]],
) -> None:
    public = FUZZ_TREE.get("public")
    if public is None:
        public = FUZZ_TREE["public"] = make_tree(tmp_path_factory.mktemp("fuzz"))
    files = StaticFiles([("/static", str(public))], dir_to_file="index.html", expires=60)
    decision = files.decide(method, b"/static/" + path, values)
    assert decision is not None
    assert decision.status in (200, 206, 304, 404, 405, 412, 416)
    body_of(decision)


FUZZ_TREE: dict[str, Path] = {}


def test_a_mount_of_the_root_directory_still_checks_containment(public: Path) -> None:
    files = StaticFiles([("/root", "/")], dir_to_file=None, expires=0)
    relative = str(public / "a.txt").lstrip("/")
    assert body_of(decide(files, f"/root/{relative}")) == TEXT
    assert decide(files, f"/root/{relative}/../.env") == not_found()
