"""The fields of an HTTP/2 request, checked (RFC 9113 §8.2, §8.3) and sorted in one pass.

h2's own checks of received fields are switched off in ``connection.py``. They run as a chain
of generators over every field, which cost about a seventh of a small request's time, and
they fail a malformed request with a connection error where RFC 9113 §8.1.1 asks for a
stream error: the other streams on the connection have done nothing wrong. This module does
the same checks in one loop; a malformed request raises :class:`MalformedRequest`, which
resets that stream alone. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from hasten.asgi import HTTPRequestError
from hasten.protocols.exchange import CONNECTION_SPECIFIC_FIELDS
from hasten.protocols.http1.checks import check_host, check_method, check_target_bytes

# RFC 9113 §8.2.1: a field name is a lowercase token (no uppercase, controls, SP or colon).
_is_lowercase_token = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+").fullmatch
# RFC 9113 §8.2.1: no NUL, CR or LF in a value, and no whitespace at either end.
_is_bad_value = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$").search
_PSEUDO_FIELDS = frozenset({b":method", b":scheme", b":path", b":authority", b":protocol"})

# RFC 9113 §8.3.1: the request line's parts as pseudo-header fields, held to HTTP/1.1's rules
# for them (token method, RFC 3986 target without fragment, valid host) by the same checks.
_REQUEST_LINE_CHECKS: Final[dict[bytes, Callable[[bytes], None]]] = {
    b":method": check_method,
    b":path": check_target_bytes,
    b":authority": check_host,
    b"host": check_host,
}

# Clients send the same fields request after request (HPACK exists because they do): a pair
# already found valid is a set lookup instead of two regex matches. Bounded by clearing.
_valid_fields: set[tuple[bytes, bytes]] = set()
_VALID_FIELDS_MAX = 4096


class MalformedRequest(Exception):
    """A request RFC 9113 §8.1.1 calls malformed: its stream is reset with PROTOCOL_ERROR."""


class RequestFields:
    """The pseudo-header fields of a request, and its regular fields in the ASGI form."""

    # A plain class, not a NamedTuple: compiled, it is made without a Python-level __new__.
    __slots__ = ("authority", "decoded", "headers", "method", "protocol", "target")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        authority: bytes,
        protocol: bytes,
        headers: list[tuple[bytes, bytes]],
        decoded: list[tuple[bytes, bytes]],
    ) -> None:
        self.method = method
        self.target = target
        self.authority = authority
        self.protocol = protocol
        self.headers = headers
        # The decoded field list these came from.
        self.decoded = decoded


def parse_request_fields(
    fields: list[tuple[bytes, bytes]], extended_connect: bool, previous: RequestFields | None
) -> RequestFields:
    """Check a request's fields and sort them; ``extended_connect`` says whether this server
    advertised SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).

    The regular fields come back with any ``cookie`` crumbs joined into one field (RFC 9113
    §8.2.3), and a ``host`` field made from ``:authority`` when the request has none (ASGI
    apps look for the authority there).

    ``previous`` is the connection's last request: clients repeat their fields (HPACK
    exists because they do), and the same fields give the same result, so its result is
    this one's too; the comparison is cheap, as the decoder hands out its table's own
    ``bytes``. So ``headers`` is never handed to an app: a scope gets a copy.
    """
    if previous is not None and fields == previous.decoded:
        return previous
    pseudo: dict[bytes, bytes] = {}
    headers: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    valid = _valid_fields
    for field in fields:
        if field not in valid:
            _check_field(*field)
            if len(valid) >= _VALID_FIELDS_MAX:
                valid.clear()
            valid.add(field)
        name = field[0]
        # Checked above: the name is not empty.
        if name[0] == 58:  # b":"
            if headers or cookies:
                raise MalformedRequest(f"pseudo-header field {name!r} after a regular field")
            if name in pseudo:
                raise MalformedRequest(f"repeated pseudo-header field {name!r}")
            pseudo[name] = field[1]
        elif name == b"cookie":
            cookies.append(field[1])
        elif name == b"host":
            if host is not None:
                raise MalformedRequest("more than one host field")
            host = field[1]
            headers.append(field)
        else:
            headers.append(field)
    method = pseudo.get(b":method")
    target = pseudo.get(b":path", b"")
    authority = pseudo.get(b":authority", b"")
    protocol = pseudo.get(b":protocol", b"")
    _check_pseudo_fields(pseudo, method, target, authority, protocol, extended_connect)
    if host is not None and authority and host != authority:
        # RFC 9113 §8.3.1: a host that names another origin than :authority.
        raise MalformedRequest("host differs from :authority")
    if cookies:
        headers.append((b"cookie", cookies[0] if len(cookies) == 1 else b"; ".join(cookies)))
    if host is None and authority:
        headers.insert(0, (b"host", authority))
    assert method is not None
    return RequestFields(method, target, authority, protocol, headers, fields)


def check_trailer_fields(fields: list[tuple[bytes, bytes]]) -> None:
    """Check the trailer fields of a request (RFC 9113 §8.1: no pseudo-header fields)."""
    for name, value in fields:
        if name[:1] == b":":
            raise MalformedRequest(f"pseudo-header field {name!r} in trailers")
        _check_field(name, value)


def _check_field(name: bytes, value: bytes) -> None:
    if _is_bad_value(value) is not None:
        raise MalformedRequest(f"invalid value of {name!r}")
    check = _REQUEST_LINE_CHECKS.get(name)
    if check is not None:
        try:
            check(value)
        except HTTPRequestError as exc:
            raise MalformedRequest(f"invalid {name!r}: {exc}") from None
    if name[:1] == b":":
        if name not in _PSEUDO_FIELDS:
            raise MalformedRequest(f"unknown pseudo-header field {name!r}")
        return
    if _is_lowercase_token(name) is None:
        raise MalformedRequest(f"invalid field name {name!r}")
    if name in CONNECTION_SPECIFIC_FIELDS:
        raise MalformedRequest(f"connection-specific field {name!r}")
    if name == b"te" and value != b"trailers":
        raise MalformedRequest("te other than trailers")


def _check_pseudo_fields(
    pseudo: dict[bytes, bytes],
    method: bytes | None,
    target: bytes,
    authority: bytes,
    protocol: bytes,
    extended_connect: bool,
) -> None:
    """RFC 9113 §8.3.1 and §8.5, RFC 8441 §4: which pseudo-header fields a request has."""
    if not method:
        raise MalformedRequest("no :method")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        # A tunnel names only its authority.
        if b":scheme" in pseudo or b":path" in pseudo or not authority:
            raise MalformedRequest("CONNECT with :scheme or :path, or without :authority")
        return
    if b":protocol" in pseudo:
        if method != b"CONNECT" or not extended_connect or not protocol:
            raise MalformedRequest(":protocol outside an extended CONNECT")
        if not authority:
            raise MalformedRequest("extended CONNECT without :authority")
    if not pseudo.get(b":scheme"):
        raise MalformedRequest("no :scheme")
    if target[:1] != b"/" and not (target == b"*" and method == b"OPTIONS"):
        raise MalformedRequest(f"invalid :path {target!r}")
