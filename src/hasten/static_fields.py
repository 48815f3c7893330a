"""The request fields static file serving reads, parsed without ever raising.

``Range`` (RFC 9110 §14.1.2), ``Accept-Encoding`` (§12.5.3), entity-tag lists (§8.8.3) and
HTTP-dates (§5.6.7). Every parser here takes whatever bytes a client sent and answers with a
value or ``None`` ("absent or invalid", which each rule then treats as the RFC says).
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC

# More digits than any file offset has: bigger numbers are clamped to this, never converted
# (Python's int() refuses strings of more than 4300 digits, RFC 9110 §14.1.1 asks that
# huge numerals be anticipated).
_MAX_DIGITS = 18
_HUGE = 10**_MAX_DIGITS

# RFC 9110 §14.1.2: int-range = first-pos "-" [ last-pos ], suffix-range = "-" suffix-length.
_RANGE_SPEC = re.compile(rb"([0-9]*)-([0-9]*)")
# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
_ENTITY_TAG = re.compile(rb'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|$)')
# RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
_QVALUE = re.compile(rb"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def _number(digits: bytes) -> int:
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One satisfiable range of a representation: ``count`` bytes from ``start``."""

    start: int
    count: int


class Unsatisfiable:
    """A valid single range that no byte of the representation falls in (RFC 9110 §15.5.17)."""


UNSATISFIABLE = Unsatisfiable()


def parse_range(value: bytes | None, size: int) -> ByteRange | Unsatisfiable | None:
    """The one byte range ``value`` asks for in a representation of ``size`` bytes.

    ``None`` means "serve the whole representation": no header, another unit, a syntax
    error, or more than one range (RFC 9110 §14.2: a server MAY ignore Range; multipart
    byteranges are not produced). An empty representation ignores Range too: no range of it
    could be described in a Content-Range.
    """
    if value is None or size <= 0:
        return None
    unit, sep, ranges = value.partition(b"=")
    if not sep or unit.strip(b" \t").lower() != b"bytes":
        return None
    specs = [spec.strip(b" \t") for spec in ranges.split(b",")]
    specs = [
        spec for spec in specs if spec
    ]  # RFC 9110 §5.6.1: empty list elements count for nothing
    if len(specs) != 1:
        return None
    match = _RANGE_SPEC.fullmatch(specs[0])
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        if not last:
            return None
        suffix = _number(last)
        if suffix == 0:  # RFC 9110 §14.1.1: a zero suffix-length is unsatisfiable
            return UNSATISFIABLE
        start = max(0, size - suffix)
        return ByteRange(start, size - start)
    start = _number(first)
    end = _number(last) if last else _HUGE
    if end < start:  # RFC 9110 §14.1.1: first-pos > last-pos makes the range-set invalid
        return None
    if start >= size:
        return UNSATISFIABLE
    end = min(end, size - 1)
    return ByteRange(start, end - start + 1)


def parse_accept_encoding(value: bytes | None) -> dict[bytes, float] | None:
    """Each coding's qvalue from ``Accept-Encoding`` (lower case, ``*`` included), or ``None``
    for no header. An item whose qvalue is malformed is dropped."""
    if value is None:
        return None
    weights: dict[bytes, float] = {}
    for item in value.split(b","):
        coding, *parameters = item.split(b";")
        coding = coding.strip(b" \t").lower()
        if not coding:
            continue
        weight: float | None = 1.0
        for parameter in parameters:
            name, _, text = parameter.partition(b"=")
            if name.strip(b" \t").lower() == b"q":
                text = text.strip(b" \t")
                weight = float(text) if _QVALUE.fullmatch(text) else None
        if weight is not None:
            # RFC 9110 §8.4.1.3: a recipient SHOULD consider "x-gzip" equivalent to "gzip".
            weights[b"gzip" if coding == b"x-gzip" else coding] = weight
    return weights


def coding_weight(weights: dict[bytes, float] | None, coding: bytes) -> float:
    """How much the client wants ``coding`` (0: not acceptable), per RFC 9110 §12.5.3."""
    if weights is None:
        # No Accept-Encoding: any coding is acceptable, but a client that did not ask may
        # not decode one (curl without --compressed), so only identity is offered.
        return 1.0 if coding == b"identity" else 0.0
    if coding in weights:
        return weights[coding]
    if coding == b"identity":
        # "identity" is acceptable unless refused by name or by "*;q=0".
        return weights.get(b"*", 1.0) or 0.0
    return weights.get(b"*", 0.0)


def parse_entity_tags(value: bytes) -> list[tuple[bool, bytes]] | None:
    """``[(weak, opaque-tag), ...]`` of an entity-tag list; ``None`` if it is malformed.

    ``*`` is the caller's to check first.
    """
    tags = []
    position = 0
    while position < len(value):
        match = _ENTITY_TAG.match(value, position)
        if match is None or match.end() == position:
            return None
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    return tags or None


def parse_http_date(value: bytes | None) -> int | None:
    """The HTTP-date ``value`` (RFC 9110 §5.6.7) as a Unix timestamp; ``None`` if invalid."""
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return int(when.timestamp())
    except (OverflowError, OSError, ValueError):
        return None


def format_http_date(timestamp: float) -> bytes:
    """``timestamp`` as an IMF-fixdate (RFC 9110 §5.6.7)."""
    return email.utils.formatdate(timestamp, usegmt=True).encode("ascii")
