"""HTTP/1.1 request checks that llhttp leaves to the server: limits, Host, framing, targets.

llhttp (through httptools) already enforces the request grammar: token methods and header
names, field-value characters, CRLF line endings, chunk-size syntax, a single valid
Content-Length, and Content-Length together with Transfer-Encoding. What it lets through,
and what only the server can decide (limits), is checked here. Every function is pure and
raises :class:`~hasten.asgi.HTTPRequestError` carrying the status to answer with; the
connection turns that into the response and closes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import httptools

from hasten.asgi import HTTPRequestError, decode_path

# RFC 9110 §7.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]; uri-host is an IP-literal
# in brackets or a reg-name (unreserved, pct-encoded, sub-delims). No userinfo, no path,
# no whitespace.
_matches_host: Final = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?"
).fullmatch
# RFC 9110 §9.1: method = token (RFC 9110 §5.6.2). llhttp checks an HTTP/1.1 request line;
# HTTP/2's :method is checked with this.
_is_token: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
# RFC 9112 §3.2 / RFC 3986 §2: a request-target is visible ASCII (no SP, controls, DEL or
# bytes above 0x7E). llhttp refuses the others on HTTP/1.1; HTTP/2's :path is checked here.
_has_non_target_byte: Final = re.compile(rb"[^\x21-\x7e]").search
_CHUNKED: Final = b"chunked"
_OWS: Final = b" \t"
# The fields check_fields reads; a request whose only one is a known valid Host has nothing
# for it to find (the connection then skips the call).
CHECKED_FIELDS: Final = frozenset({b"host", b"transfer-encoding", b"content-length", b"expect"})
# Host values already found valid. Requests repeat a handful of them, and a set lookup is
# far cheaper than the regex; only valid values enter, and the set stays small.
_known_valid_hosts: Final[set[bytes]] = set()
_KNOWN_VALID_HOSTS_MAX: Final = 256
# Origin-form targets already checked and split: target -> (raw path, query, decoded path).
# Like hosts, requests repeat a handful of targets; long ones are not kept, so the cache
# holds at most _KNOWN_TARGETS_MAX x _KNOWN_TARGET_MAX_LENGTH bytes of them.
_known_targets: Final[dict[bytes, tuple[bytes, bytes, str]]] = {}
_KNOWN_TARGETS_MAX: Final = 1024
_KNOWN_TARGET_MAX_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The sizes an HTTP/1.1 request may reach: those settings, read once per server
    (``settings_view(RequestLimits, config)``)."""

    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
    limit_request_headers_size: int
    limit_request_body: int | None
    limit_pipelined_requests: int


def field_limit_error(count: int, field_size: int, limits: RequestLimits) -> HTTPRequestError:
    """RFC 9110 §5.4 and RFC 6585 §5: the 431 for a head past one of its limits."""
    if count > limits.limit_request_fields:
        return HTTPRequestError(431, f"more than {limits.limit_request_fields} header fields")
    if field_size > limits.limit_request_field_size:
        size = limits.limit_request_field_size
        return HTTPRequestError(431, f"a header field is larger than {size} bytes")
    size = limits.limit_request_headers_size
    return HTTPRequestError(431, f"request head larger than {size} bytes")


def split_target(method: bytes, target: bytes) -> tuple[bytes, bytes, str]:
    """Check a request-target and split it: ``(raw_path, query_string, path)``.

    ``path`` has its percent-escapes decoded. The hot path looks the target up in
    ``known_target`` first, which this fills.
    """
    check_request_target(method, target)
    if target[:1] == b"/":
        raw_path, _, query_string = target.partition(b"?")
    else:
        # Any: httptools' stub types the parts as bytes, but a part the target lacks is
        # None, and the compiled build (mypyc) checks what the stub declares.
        parsed: Any = httptools.parse_url(target)
        raw_path = parsed.path or b"/"
        query_string = parsed.query or b""
    try:
        path = decode_path(raw_path)
    except UnicodeDecodeError:
        raise HTTPRequestError(400, "non-ASCII bytes in the request target") from None
    split = (raw_path, query_string, path)
    if target[:1] == b"/" and len(target) <= _KNOWN_TARGET_MAX_LENGTH:
        # An origin-form target's checks do not depend on the method.
        if len(_known_targets) >= _KNOWN_TARGETS_MAX:
            _known_targets.clear()
        _known_targets[target] = split
    return split


known_target: Final = _known_targets.get
known_valid_host: Final = _known_valid_hosts.__contains__


def check_request_target(method: bytes, target: bytes) -> None:
    """Request-target forms that llhttp accepts but the method or the grammar does not."""
    if target == b"*":
        # RFC 9112 §3.2.4: the asterisk-form is only for a server-wide OPTIONS.
        if method != b"OPTIONS":
            raise HTTPRequestError(400, "asterisk-form target outside OPTIONS")
    else:
        _check_no_fragment(target)


def _check_no_fragment(target: bytes) -> None:
    if target.find(b"#") >= 0:  # bytes.find is cheaper than `in` for one byte
        # RFC 9112 §3.2: a fragment is never part of the request-target.
        raise HTTPRequestError(400, "fragment in the request target")


def check_method(method: bytes) -> None:
    """RFC 9110 §9.1: a method is a token (what llhttp enforces on HTTP/1.1)."""
    if _is_token(method) is None:
        raise HTTPRequestError(400, "the method is not a token")


def check_target_bytes(target: bytes) -> None:
    """RFC 9112 §3.2 / RFC 3986: visible ASCII (what llhttp enforces on HTTP/1.1), and no
    fragment."""
    if _has_non_target_byte(target) is not None:
        raise HTTPRequestError(400, "a control, space or non-ASCII byte in the request target")
    _check_no_fragment(target)


def check_host(value: bytes) -> None:
    """RFC 9110 §7.2 / RFC 3986 §3.2.2: ``uri-host [ ":" port ]``, nothing else."""
    if not is_valid_host(value):
        raise HTTPRequestError(400, "invalid host")


def absolute_form_authority(target: bytes) -> bytes | None:
    """The ``host[:port]`` of an absolute-form target, ``None`` for any other form."""
    if target[:1] == b"/" or target == b"*":
        return None
    _, separator, rest = target.partition(b"://")
    if not separator:
        return None
    authority = rest
    for end in (b"/", b"?"):
        authority = authority.partition(end)[0]
    return authority


def check_fields(
    headers: list[tuple[bytes, bytes]],
    http_version: str,
    limits: RequestLimits,
    authority: bytes | None,
) -> bool:
    """Host and framing rules over the (lower-cased) header fields of one request.

    Returns whether the request carries ``Expect: 100-continue``, noted during the same
    pass over the fields so that the hot path walks them once.

    With an absolute-form target, ``authority`` is its ``host[:port]``: the Host field is
    replaced by it in ``headers`` (RFC 9112 §3.2.2: the server MUST ignore the received Host
    and use the target's authority), so routing by Host sees what the target says.
    """
    host_index = -1
    hosts = 0
    codings: list[bytes] | None = None
    expects_continue = False
    for index, (name, value) in enumerate(headers):
        if name not in CHECKED_FIELDS:
            continue
        if name == b"host":
            hosts += 1
            host_index = index
        elif name == b"transfer-encoding":
            if codings is None:
                codings = []
            codings.extend(coding.strip(_OWS).lower() for coding in value.split(b","))
        elif (
            name == b"content-length"
            and limits.limit_request_body is not None
            # llhttp has already checked that the value is 1*DIGIT (and OWS): int() is safe.
            and int(value.strip(_OWS)) > limits.limit_request_body
        ):
            raise HTTPRequestError(
                413, f"request body larger than {limits.limit_request_body} bytes"
            )
        elif name == b"expect" and value.lower() == b"100-continue":
            expects_continue = True
    # RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, with more than one Host, or
    # with an invalid Host value.
    if hosts > 1:
        raise HTTPRequestError(400, "more than one Host header field")
    if hosts == 1:
        host = headers[host_index][1]
        if host not in _known_valid_hosts and not is_valid_host(host):
            raise HTTPRequestError(400, "invalid Host header field")
        if authority is not None:
            # RFC 9110 §4.2.4: userinfo in the target is an error, like any invalid host.
            if not is_valid_host(authority):
                raise HTTPRequestError(400, "invalid authority in the request target")
            headers[host_index] = (b"host", authority)
    elif http_version == "1.1":
        raise HTTPRequestError(400, "HTTP/1.1 request without a Host header field")
    if codings is not None:
        check_transfer_codings(codings, http_version)
    return expects_continue


def is_valid_host(value: bytes) -> bool:
    """Whether ``value`` is a valid Host (or :authority); valid ones are remembered."""
    if value in _known_valid_hosts:
        return True
    if _matches_host(value) is None:
        return False
    if len(_known_valid_hosts) >= _KNOWN_VALID_HOSTS_MAX:
        _known_valid_hosts.clear()
    _known_valid_hosts.add(value)
    return True


def check_transfer_codings(codings: list[bytes], http_version: str) -> None:
    """The request's transfer codings, in order, from every Transfer-Encoding line.

    Only ``chunked`` is implemented, so only ``chunked`` alone is accepted.
    """
    if http_version == "1.0":
        # RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
        raise HTTPRequestError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if codings == [_CHUNKED]:
        return
    if b"" in codings or codings.count(_CHUNKED) > 1 or codings[-1] != _CHUNKED:
        # RFC 9112 §6.3(4): unless chunked is applied once, and last, the body's length
        # cannot be determined reliably (a smuggling vector): 400.
        raise HTTPRequestError(400, "chunked is not the only, final transfer coding")
    # RFC 9112 §6.1: a transfer coding the server does not implement SHOULD get 501.
    raise HTTPRequestError(501, "unsupported transfer coding")
