"""HPACK (RFC 7541): header blocks to field lists and back, sans I/O.

One ``HeaderDecoder`` per connection reads the client's header blocks, one ``HeaderEncoder``
writes the server's; each keeps its dynamic table in step with the peer's. A decoding error
leaves the decoder's table out of step with the client's encoder, so every one of them is
a connection error (RFC 9113 §4.3: COMPRESSION_ERROR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from hasten.protocols.http2.huffman import (
    HuffmanError,
    huffman_decode,
    huffman_encode,
    huffman_encoded_length,
)

Field = tuple[bytes, bytes]

# RFC 7541 Appendix A: the static table, index 1 first.
STATIC_TABLE: Final[tuple[Field, ...]] = (
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
)
_STATIC_ENTRIES: Final = len(STATIC_TABLE)


def _static_field_index() -> dict[bytes, dict[bytes, int]]:
    """The static entries with a value, by name then value: compiled, a (name, value) key
    would be a new tuple at each lookup."""
    index: dict[bytes, dict[bytes, int]] = {}
    for position, (name, value) in enumerate(STATIC_TABLE, 1):
        if value:
            index.setdefault(name, {})[value] = position
    return index


_STATIC_FIELD_INDEX: Final = _static_field_index()
_STATIC_NAME_INDEX: Final[dict[bytes, int]] = {
    name: index for index, (name, _) in reversed(list(enumerate(STATIC_TABLE, 1)))
}

# RFC 7541 §4.1: an entry's size counts 32 octets of overhead besides its name and value;
# RFC 9113 §6.5.2 measures a header list the same way.
ENTRY_OVERHEAD: Final = 32
# RFC 7541 §4.2 / RFC 9113 §6.5.2: SETTINGS_HEADER_TABLE_SIZE's initial value.
DEFAULT_TABLE_SIZE: Final = 4096
# RFC 7541 §5.1 lets a decoder limit integers; 4 continuation octets after the prefix hold
# any length or index a header block can have (2^28), and stop an endless integer at once.
_MAX_CONTINUATION_OCTETS: Final = 4

# The first octet of each representation (RFC 7541 §6).
_INDEXED: Final = 0x80
_INCREMENTAL_INDEXING: Final = 0x40
_TABLE_SIZE_UPDATE: Final = 0x20
_NEVER_INDEXED: Final = 0x10
_HUFFMAN: Final = 0x80


class HeaderCompressionError(Exception):
    """A header block this decoder cannot decode: a connection error, COMPRESSION_ERROR."""


class HeaderListTooLarge(HeaderCompressionError):
    """A header block that decodes to more than the decoder's header-list limit (an HPACK
    bomb, CVE-2016-6581); decoding stops before the list is built."""


def field_size(name: bytes, value: bytes) -> int:
    """A field's size in a dynamic table or a header list (RFC 7541 §4.1)."""
    return len(name) + len(value) + ENTRY_OVERHEAD


class DynamicTable:
    """The dynamic table (RFC 7541 §2.3.2, §4): entries oldest first, evicted oldest first."""

    __slots__ = ("entries", "max_size", "size")

    def __init__(self, max_size: int) -> None:
        self.entries: list[Field] = []
        self.size = 0
        self.max_size = max_size

    def add(self, field: Field) -> bool:
        """Add ``field`` as the newest entry, evicting to make room (§4.4); a field larger
        than the whole table empties it and is not added (``False``)."""
        size = field_size(field[0], field[1])
        self.evict_to(self.max_size - size)
        if size > self.max_size:
            return False
        self.entries.append(field)
        self.size += size
        return True

    def resize(self, max_size: int) -> None:
        """A new maximum size (§4.3), evicting what no longer fits."""
        self.max_size = max_size
        self.evict_to(max_size)

    def evict_to(self, size: int) -> None:
        entries = self.entries
        while self.size > size and entries:
            name, value = entries.pop(0)
            self.size -= field_size(name, value)
            self.evicted(name, value)

    def evicted(self, name: bytes, value: bytes) -> None:
        """Called for each entry evicted, oldest first."""


class HeaderDecoder:
    """Decodes one connection's header blocks, received in order.

    ``max_table_size`` is the SETTINGS_HEADER_TABLE_SIZE this side advertised: the most a
    table-size update may ask for. ``max_header_list_size`` bounds the decoded list of one
    block, measured as RFC 9113 §6.5.2 does.
    """

    __slots__ = ("max_header_list_size", "max_table_size", "never_indexed", "table")

    def __init__(self, max_header_list_size: int, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self.table = DynamicTable(max_table_size)
        self.max_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        # The positions, in the last decoded list, of fields sent as never indexed (RFC 7541
        # §6.2.3): whoever forwards them must keep them so.
        self.never_indexed: list[int] = []

    def decode(self, block: bytes) -> list[Field]:
        """The fields of one complete header block, in order."""
        fields: list[Field] = []
        if self.never_indexed:
            self.never_indexed = []
        list_size = 0
        list_limit = self.max_header_list_size
        position = 0
        end = len(block)
        while position < end:
            first = block[position]
            if first & _INDEXED:
                index, position = decode_integer(block, position, 7)
                field = self.field_at(index)
            elif first & _INCREMENTAL_INDEXING:
                index, position = decode_integer(block, position, 6)
                field, position = self._literal(block, position, index)
                self.table.add(field)
            elif first & _TABLE_SIZE_UPDATE:
                # RFC 7541 §4.2: only at the start of a block, and within the advertised size.
                if fields:
                    raise HeaderCompressionError("a table size update after a field")
                size, position = decode_integer(block, position, 5)
                if size > self.max_table_size:
                    raise HeaderCompressionError("a table size update above the limit")
                self.table.resize(size)
                continue
            else:
                index, position = decode_integer(block, position, 4)
                field, position = self._literal(block, position, index)
                if first & _NEVER_INDEXED:
                    self.never_indexed.append(len(fields))
            list_size += len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
            if list_size > list_limit:
                raise HeaderListTooLarge("a header list larger than the limit")
            fields.append(field)
        return fields

    def field_at(self, index: int) -> Field:
        """The entry at ``index`` of the static table followed by the dynamic one (§2.3.3)."""
        if 0 < index <= _STATIC_ENTRIES:
            return STATIC_TABLE[index - 1]
        entries = self.table.entries
        dynamic_index = index - _STATIC_ENTRIES
        if index == 0 or dynamic_index > len(entries):
            raise HeaderCompressionError(f"no table entry at index {index}")
        return entries[len(entries) - dynamic_index]

    def _literal(self, block: bytes, position: int, name_index: int) -> tuple[Field, int]:
        """A literal field's name (a table entry's, or a literal) and value (§6.2)."""
        if name_index:
            name = self.field_at(name_index)[0]
        else:
            name, position = decode_string(block, position)
        value, position = decode_string(block, position)
        return (name, value), position


def decode_integer(block: bytes, position: int, prefix_bits: int) -> tuple[int, int]:
    """The integer whose prefix fills the low ``prefix_bits`` of ``block[position]``
    (RFC 7541 §5.1), and the position after it."""
    end = len(block)
    prefix_max = (1 << prefix_bits) - 1
    value = block[position] & prefix_max
    position += 1
    if value < prefix_max:
        return value, position
    shift = 0
    while True:
        if position == end:
            raise HeaderCompressionError("a truncated integer")
        octet = block[position]
        position += 1
        value += (octet & 0x7F) << shift
        if not octet & 0x80:
            return value, position
        shift += 7
        if shift == 7 * _MAX_CONTINUATION_OCTETS:
            raise HeaderCompressionError("an integer longer than any a header block needs")


def decode_string(block: bytes, position: int) -> tuple[bytes, int]:
    """The string literal at ``position`` (RFC 7541 §5.2), and the position after it."""
    if position == len(block):
        raise HeaderCompressionError("a truncated field")
    huffman = block[position] & _HUFFMAN
    length, position = decode_integer(block, position, 7)
    end = position + length
    if end > len(block):
        raise HeaderCompressionError("a string longer than its header block")
    if not huffman:
        return block[position:end], end
    try:
        return huffman_decode(block[position:end]), end
    except HuffmanError as exc:
        raise HeaderCompressionError(str(exc)) from exc


# Every one-octet representation, made once: most fields are one octet (an index).
_OCTETS: Final[tuple[bytes, ...]] = tuple(bytes((octet,)) for octet in range(256))


def encode_integer(first_bits: int, value: int, prefix_bits: int) -> bytes:
    """``value`` with a ``prefix_bits`` prefix, the first octet's other bits ``first_bits``."""
    prefix_max = (1 << prefix_bits) - 1
    if value < prefix_max:
        return _OCTETS[first_bits | value]
    octets = [first_bits | prefix_max]
    value -= prefix_max
    while value >= 0x80:
        octets.append(value & 0x7F | 0x80)
        value >>= 7
    octets.append(value)
    return bytes(octets)


# Huffman-coded string literals already made, shared by every connection (the coding has
# no state): a server sends the same values response after response. Bounded by clearing.
_CODED_LITERALS: Final[dict[bytes, bytes]] = {}
_CODED_LITERALS_MAX: Final = 4096


def encode_string(parts: list[bytes], value: bytes, huffman: bool) -> None:
    """Add a string literal to ``parts``, Huffman-coded if ``huffman`` and that makes it no
    longer."""
    if not (huffman and value):
        parts.append(encode_integer(0, len(value), 7))
        parts.append(value)
        return
    literal = _CODED_LITERALS.get(value)
    if literal is None:
        coded_length = huffman_encoded_length(value)
        if coded_length <= len(value):
            literal = encode_integer(_HUFFMAN, coded_length, 7) + huffman_encode(value)
        else:
            literal = encode_integer(0, len(value), 7) + value
        if len(_CODED_LITERALS) >= _CODED_LITERALS_MAX:
            _CODED_LITERALS.clear()
        _CODED_LITERALS[value] = literal
    parts.append(literal)


class _IndexedTable(DynamicTable):
    """The encoder's dynamic table, also indexed by field and by name.

    Each entry is known by its insertion number; entry number ``n`` sits at index
    ``61 + inserted - n + 1`` while it lasts.
    """

    __slots__ = ("by_field", "by_name", "evicted_count", "inserted")

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size)
        self.inserted = 0
        self.evicted_count = 0
        # Entry numbers by name then value, and by name alone.
        self.by_field: dict[bytes, dict[bytes, int]] = {}
        self.by_name: dict[bytes, int] = {}

    def add(self, field: Field) -> bool:
        if not super().add(field):
            return False
        self.inserted += 1
        name, value = field
        values = self.by_field.get(name)
        if values is None:
            values = self.by_field[name] = {}
        values[value] = self.inserted
        self.by_name[name] = self.inserted
        return True

    def evicted(self, name: bytes, value: bytes) -> None:
        self.evicted_count += 1
        number = self.evicted_count
        # A newer entry with the same field or name may have taken the mapping over.
        values = self.by_field.get(name)
        if values is not None and values.get(value) == number:
            del values[value]
            if not values:
                del self.by_field[name]
        if self.by_name.get(name) == number:
            del self.by_name[name]

    def index_of(self, number: int) -> int:
        return _STATIC_ENTRIES + self.inserted - number + 1


class HeaderEncoder:
    """Encodes one connection's header blocks, sent in order.

    Fields are added to the dynamic table unless they are never indexed (RFC 7541 §7.1.3:
    the caller says which) or their name is one whose values rarely repeat.
    ``huffman`` codes each string literal that comes out shorter for it.
    """

    __slots__ = (
        "huffman",
        "last_block",
        "last_fields",
        "last_table_state",
        "pending_size_update",
        "smallest_size_update",
        "table",
        "unindexed",
    )

    def __init__(
        self,
        table_size: int = DEFAULT_TABLE_SIZE,
        huffman: bool = True,
        unindexed_names: frozenset[bytes] = frozenset(),
    ) -> None:
        self.table = _IndexedTable(table_size)
        self.huffman = huffman
        self.unindexed = unindexed_names
        self.pending_size_update = False
        self.smallest_size_update = table_size
        # The last block that left the table as it found it, for the same fields again (a
        # server answers request after request with the same head): the same bytes while
        # the table has not changed since.
        self.last_fields: list[Field] = []
        self.last_block = b""
        self.last_table_state = (-1, -1)

    def resize(self, table_size: int) -> None:
        """Use a table of ``table_size`` (at most the peer's SETTINGS_HEADER_TABLE_SIZE);
        the next block starts by saying so (RFC 7541 §4.2)."""
        self.table.resize(table_size)
        if self.pending_size_update:
            self.smallest_size_update = min(self.smallest_size_update, table_size)
        else:
            self.pending_size_update = True
            self.smallest_size_update = table_size

    def encode(self, fields: Sequence[Field], never_indexed: Sequence[int] = ()) -> bytes:
        """One header block of ``fields``; those at the positions ``never_indexed`` are
        sent as never indexed (RFC 7541 §6.2.3)."""
        table = self.table
        table_state = (table.inserted, table.evicted_count)
        if (
            table_state == self.last_table_state
            and not never_indexed
            and not self.pending_size_update
            and fields == self.last_fields
        ):
            return self.last_block
        # The parts of the block, joined once: compiled, list.append is a primitive where
        # bytearray's methods are calls.
        parts: list[bytes] = []
        # A block that starts with a table size update is never sent twice.
        reusable = not (never_indexed or self.pending_size_update)
        if self.pending_size_update:
            self.pending_size_update = False
            # §4.2: the smallest size since the last block first, so the peer evicts as we did.
            if self.smallest_size_update < self.table.max_size:
                parts.append(encode_integer(_TABLE_SIZE_UPDATE, self.smallest_size_update, 5))
            parts.append(encode_integer(_TABLE_SIZE_UPDATE, self.table.max_size, 5))
        for position, (name, value) in enumerate(fields):
            if never_indexed and position in never_indexed:
                self._encode_literal(parts, name, value, _NEVER_INDEXED, 4)
            else:
                self._encode_field(parts, name, value)
        block = b"".join(parts)
        if reusable and (table.inserted, table.evicted_count) == table_state:
            self.last_fields = list(fields)
            self.last_block = block
            self.last_table_state = table_state
        return block

    def _encode_field(self, parts: list[bytes], name: bytes, value: bytes) -> None:
        index = 0
        values = _STATIC_FIELD_INDEX.get(name)
        if values is not None:
            index = values.get(value, 0)
        if not index:
            values = self.table.by_field.get(name)
            if values is not None:
                number = values.get(value, 0)
                if number:
                    index = self.table.index_of(number)
        if index:
            parts.append(encode_integer(_INDEXED, index, 7))
        elif name in self.unindexed:
            self._encode_literal(parts, name, value, 0, 4)
        else:
            self._encode_literal(parts, name, value, _INCREMENTAL_INDEXING, 6)
            self.table.add((name, value))

    def _encode_literal(
        self, parts: list[bytes], name: bytes, value: bytes, first_bits: int, prefix: int
    ) -> None:
        name_index = _STATIC_NAME_INDEX.get(name, 0)
        if not name_index:
            number = self.table.by_name.get(name, 0)
            if number:
                name_index = self.table.index_of(number)
        parts.append(encode_integer(first_bits, name_index, prefix))
        if not name_index:
            encode_string(parts, name, self.huffman)
        encode_string(parts, value, self.huffman)
