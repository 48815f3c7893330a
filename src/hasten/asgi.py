"""ASGI types, and the pieces every protocol shares: scope building and response checks."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http import HTTPStatus
from typing import Any, Final, Literal, TypedDict
from urllib.parse import unquote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]

# The HTTP and WebSocket spec version (2.5: the ``reason`` of ``websocket.disconnect``).
ASGI_VERSION: Final[dict[str, str]] = {"version": "3.0", "spec_version": "2.5"}
# The lifespan spec is versioned on its own, and 2.0 is its latest.
LIFESPAN_ASGI_VERSION: Final[dict[str, str]] = {"version": "3.0", "spec_version": "2.0"}


class ASGIVersions(TypedDict):
    version: str
    spec_version: str


class HTTPScope(TypedDict):
    type: Literal["http"]
    asgi: ASGIVersions
    http_version: str
    method: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: list[tuple[bytes, bytes]]
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    state: dict[str, Any]
    extensions: dict[str, Any]


class LifespanScope(TypedDict):
    type: Literal["lifespan"]
    asgi: ASGIVersions
    state: dict[str, Any]


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone away (ASGI spec 2.4)."""


class HTTPRequestError(Exception):
    """A request the server refuses, carrying the status to answer with (400, 414, 505...)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def decode_path(raw_path: bytes) -> str:
    """The ASGI ``path``: the target path with percent-escapes decoded as UTF-8.

    Raises ``UnicodeDecodeError`` for raw bytes outside ASCII, which no valid target has.
    """
    path = raw_path.decode("ascii")
    # Most paths carry no escapes; skipping unquote() for them is measurably cheaper.
    if "%" in path:
        return unquote(path)
    return path


# RFC 9110 §5.1: field-name = token.
_is_token = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
# RFC 9110 §5.5: CR, LF and NUL in a field value allow response splitting.
_find_forbidden_value_byte = re.compile(rb"[\x00\r\n]").search


# Apps send the same few header lines response after response: a pair already found valid
# is a set lookup instead of two regex matches. Bounded by clearing.
_valid_header_pairs: set[tuple[bytes, bytes]] = set()
_VALID_HEADER_PAIRS_MAX = 4096


def check_response_header(name: object, value: object) -> None:
    """Raise ``RuntimeError`` for a header the app sent that must not reach the wire."""
    if not isinstance(name, bytes) or not isinstance(value, bytes):
        raise RuntimeError(
            f"Response header names and values must be bytes, got {name!r}: {value!r}"
        )
    pair = (name, value)
    if pair in _valid_header_pairs:
        return
    if _is_token(name) is None:
        raise RuntimeError(f"Invalid response header name {name!r}")
    if _find_forbidden_value_byte(value) is not None:
        raise RuntimeError(f"Invalid response header value {value!r} (contains CR, LF or NUL)")
    if len(_valid_header_pairs) >= _VALID_HEADER_PAIRS_MAX:
        _valid_header_pairs.clear()
    _valid_header_pairs.add(pair)


def check_response_status(status: object) -> int:
    """The app's ``status`` if it is a final HTTP status code; ``RuntimeError`` otherwise."""
    if type(status) is not int or not 200 <= status <= 599:
        raise invalid_status_error(status)
    return status


def invalid_status_error(status: object) -> RuntimeError:
    """The error for a response status that is not a final HTTP status code."""
    return RuntimeError(f"Invalid response status {status!r}: expected an int in 200..599")


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


# Status lines are built once, not per response.
_STATUS_LINES: dict[int, bytes] = {int(status): _status_line(int(status)) for status in HTTPStatus}
# Every final status an app may send, with its line: one lookup both checks and serialises
# the status (after a type check: 200.0 would find 200's line).
FINAL_STATUS_LINES: Final[dict[int, bytes]] = {
    status: _status_line(status) for status in range(200, 600)
}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n`` for any status code."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else _status_line(status)


def plain_response_body(status: int) -> bytes:
    """The body of a short, fixed error response: the status's reason phrase."""
    return HTTPStatus(status).phrase.encode("ascii") + b"\n"


PLAIN_RESPONSE_CONTENT_TYPE = b"text/plain; charset=utf-8"


def plain_response(
    status: int, *, close: bool = True, extra_headers: bytes = b"", head: bool = False
) -> bytes:
    """A short, fixed HTTP/1.1 error response: the status line and its phrase as body.

    ``extra_headers`` are serialised header lines the status calls for (``426`` names the
    protocol versions to upgrade to, for instance). ``head``: the answer to a HEAD request,
    whose fields are a GET's but which carries no content (RFC 9110 §9.3.2).
    """
    body = plain_response_body(status)
    return b"".join(
        (
            status_line(status),
            extra_headers,
            b"content-type: %b\r\n" % PLAIN_RESPONSE_CONTENT_TYPE,
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n" if close else b"\r\n",
            b"" if head else body,
        )
    )


def encode_headers(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Serialise header pairs as ``name: value\\r\\n`` lines, in one join."""
    return b"".join([b"%s: %s\r\n" % pair for pair in headers])


# ASGI spec 2.4: the denial response extension lets a websocket app answer with its own
# HTTP response instead of accepting.
WEBSOCKET_DENIAL_EXTENSION = "websocket.http.response"


def websocket_scope(http_scope: Scope) -> Scope:
    """The ASGI websocket scope of an upgrade request, from the request's HTTP scope: the
    same keys but ``method``, with ``type`` "websocket", scheme ``ws``/``wss``,
    ``subprotocols``, and the denial extension advertised instead of the HTTP response's
    (trailers, files...), which a WebSocket has no use for.

    Subprotocols are the comma-separated tokens of every ``Sec-WebSocket-Protocol`` field
    (RFC 6455 §4.2.1 item 8), decoded as Latin-1 so that no byte can make decoding fail.
    """
    subprotocols = [
        token.strip()
        for name, value in http_scope["headers"]
        if name == b"sec-websocket-protocol"
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]
    scope = {key: value for key, value in http_scope.items() if key != "method"}
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if http_scope["scheme"] in ("https", "wss") else "ws"
    scope["subprotocols"] = subprotocols
    scope["extensions"] = {
        name: value
        for name, value in http_scope["extensions"].items()
        if not name.startswith("http.response.")
    }
    scope["extensions"][WEBSOCKET_DENIAL_EXTENSION] = {}
    return scope
