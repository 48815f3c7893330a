"""The grammar of RFC 7239's ``Forwarded`` header: field lines in, elements out, no trust.

What the elements mean, and which of them to believe, is ``proxy.py``'s business. This
module only reads the syntax, strictly: a value that does not follow it is reported as
``None`` in place of the element it spoils, never raised, so a client can't turn a bad
header into an error response.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

# One element: parameter name (lower-cased) -> value, quoted strings unescaped.
ForwardedElement = dict[str, str]

# RFC 7239 §4: forwarded-pair = token "=" value; value = token / quoted-string
# (RFC 9110 §5.6.2 token, §5.6.4 quoted-string). OWS around ";" is not in the ABNF but is
# common (``for=1.2.3.4; proto=https``) and cannot change the meaning, so it is skipped.
_TCHAR: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_PAIR: Final = re.compile(
    rf"[ \t]*({_TCHAR}+)=(?:({_TCHAR}+)|\"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]"
    rf"|\\[\t \x21-\x7e\x80-\xff])*)\")[ \t]*"
)
_QUOTED_PAIR: Final = re.compile(r"\\(.)")
# RFC 7239 §6: obfnode / obfport = "_" 1*( ALPHA / DIGIT / "." / "_" / "-" )
_OBFUSCATED: Final = re.compile(r"_[A-Za-z0-9._\-]+")
_PORT: Final = re.compile(r"[0-9]{1,5}")


def parse_forwarded(line: bytes) -> list[ForwardedElement | None]:
    """The elements of one ``Forwarded`` field line, left to right.

    A malformed element is ``None`` and ends the list: past a syntax error (above all an
    unterminated quoted string) nothing says where the next element starts. Empty list
    members are skipped (RFC 9110 §5.6.1).
    """
    text = line.decode("latin-1")
    elements: list[ForwardedElement | None] = []
    element: ForwardedElement = {}
    position = 0
    end = len(text)
    while True:
        while position < end and text[position] in " \t":
            position += 1
        if position == end or text[position] == ",":
            if element:
                elements.append(element)
                element = {}
            if position == end:
                return elements
            position += 1
            continue
        match = _PAIR.match(text, position)
        if match is None:
            elements.append(None)
            return elements
        name = match.group(1).lower()
        if name in element:
            # RFC 7239 §4: each parameter MUST NOT occur more than once per element.
            elements.append(None)
            return elements
        token, quoted = match.group(2), match.group(3)
        element[name] = token if token is not None else _QUOTED_PAIR.sub(r"\1", quoted)
        position = match.end()
        if position < end and text[position] == ";":
            position += 1
        elif position < end and text[position] != ",":
            elements.append(None)
            return elements


def parse_node(value: str) -> tuple[str, int] | None:
    """A ``for``/``by`` node (RFC 7239 §6) as ``(host, port)``, ``None`` if malformed.

    The host of an IPv6 node loses its brackets, as in an ASGI ``client``; an obfuscated
    identifier (``_hidden``) or ``unknown`` is kept as the host, and a missing or
    obfuscated port is 0.
    """
    if value.startswith("["):
        # RFC 7239 §6: IPv6 nodes are bracketed (and so quoted, ":" not being a tchar).
        close = value.find("]")
        host, rest = value[1:close], value[close + 1 :]
        if close < 0 or not _is_ip(host, 6):
            return None
    else:
        host, colon, port_text = value.partition(":")
        rest = colon + port_text
        if not (_is_ip(host, 4) or host.lower() == "unknown" or _OBFUSCATED.fullmatch(host)):
            return None
    if not rest:
        return host, 0
    if rest[0] != ":":
        return None
    port = rest[1:]
    if _OBFUSCATED.fullmatch(port):
        return host, 0
    if _PORT.fullmatch(port) and int(port) <= 65535:
        return host, int(port)
    return None


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False
