"""HPACK (RFC 7541) as hasten codes it: the RFC's own examples, round trips against the
``hpack`` package both ways, and header blocks a hostile client could send."""

from __future__ import annotations

import hpack
import pytest
from hpack import NeverIndexedHeaderTuple
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hypothesis import given, settings
from hypothesis import strategies as st

from hasten.protocols.http2.header_compression import (
    STATIC_TABLE,
    HeaderCompressionError,
    HeaderDecoder,
    HeaderEncoder,
    HeaderListTooLarge,
    encode_integer,
)
from hasten.protocols.http2.huffman import (
    CODE_LENGTHS,
    CODES,
    HuffmanError,
    huffman_decode,
    huffman_encode,
    huffman_encoded_length,
)

Fields = list[tuple[bytes, bytes]]
LIMIT = 65536

# -- RFC 7541 Appendix C ---------------------------------------------------------------------

GET_ROOT = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")]
AUTHORITY = (b":authority", b"www.example.com")
NO_CACHE = (b"cache-control", b"no-cache")
CUSTOM = (b"custom-key", b"custom-value")
REQUESTS: list[Fields] = [
    [*GET_ROOT, AUTHORITY],
    [*GET_ROOT, AUTHORITY, NO_CACHE],
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"), AUTHORITY, CUSTOM],
]
# The dynamic table after each request, newest entry first, and its size.
REQUEST_TABLES: list[tuple[Fields, int]] = [
    ([AUTHORITY], 57),
    ([NO_CACHE, AUTHORITY], 110),
    ([CUSTOM, NO_CACHE, AUTHORITY], 164),
]
C3_BLOCKS = [
    "828684410f7777772e6578616d706c652e636f6d",
    "828684be58086e6f2d6361636865",
    "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
]
C4_BLOCKS = [
    "828684418cf1e3c2e5f23a6ba0ab90f4ff",
    "828684be5886a8eb10649cbf",
    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
]

DATE_1 = b"Mon, 21 Oct 2013 20:13:21 GMT"
DATE_2 = b"Mon, 21 Oct 2013 20:13:22 GMT"
LOCATION = (b"location", b"https://www.example.com")
GZIP = (b"content-encoding", b"gzip")
COOKIE = (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
RESPONSES: list[Fields] = [
    [(b":status", b"302"), (b"cache-control", b"private"), (b"date", DATE_1), LOCATION],
    [(b":status", b"307"), (b"cache-control", b"private"), (b"date", DATE_1), LOCATION],
    [
        (b":status", b"200"),
        (b"cache-control", b"private"),
        (b"date", DATE_2),
        LOCATION,
        GZIP,
        COOKIE,
    ],
]
RESPONSE_TABLES: list[tuple[Fields, int]] = [
    ([LOCATION, (b"date", DATE_1), (b"cache-control", b"private"), (b":status", b"302")], 222),
    ([(b":status", b"307"), LOCATION, (b"date", DATE_1), (b"cache-control", b"private")], 222),
    ([COOKIE, GZIP, (b"date", DATE_2)], 215),
]
C5_BLOCKS = [
    "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a3231"
    "20474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
    "4803333037c1c0bf",
    "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a6970773866"
    "6f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d3336"
    "30303b2076657273696f6e3d31",
]
C6_BLOCKS = [
    "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad1718"
    "63c78f0b97c8e9ae82ae43d3",
    "4883640effc1c0bf",
    "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7"
    "b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
]
EXAMPLES = [
    pytest.param(C3_BLOCKS, REQUESTS, REQUEST_TABLES, 4096, False, id="C.3"),
    pytest.param(C4_BLOCKS, REQUESTS, REQUEST_TABLES, 4096, True, id="C.4"),
    pytest.param(C5_BLOCKS, RESPONSES, RESPONSE_TABLES, 256, False, id="C.5"),
    pytest.param(C6_BLOCKS, RESPONSES, RESPONSE_TABLES, 256, True, id="C.6"),
]


def newest_first(decoder_or_encoder: HeaderDecoder | HeaderEncoder) -> tuple[Fields, int]:
    table = decoder_or_encoder.table
    return list(reversed(table.entries)), table.size


@pytest.mark.parametrize(("blocks", "field_lists", "tables", "table_size", "huffman"), EXAMPLES)
def test_rfc_7541_examples(
    blocks: list[str],
    field_lists: list[Fields],
    tables: list[tuple[Fields, int]],
    table_size: int,
    huffman: bool,
) -> None:
    """Each block decodes to its fields and is what encoding them gives, the dynamic
    tables of both sides as the RFC shows them after each."""
    decoder = HeaderDecoder(LIMIT, max_table_size=4096)
    decoder.table.resize(table_size)
    encoder = HeaderEncoder(table_size, huffman=huffman)
    for block, fields, table in zip(blocks, field_lists, tables, strict=True):
        assert decoder.decode(bytes.fromhex(block)) == fields
        assert encoder.encode(fields).hex() == block
        assert newest_first(decoder) == newest_first(encoder) == table


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ("400a637573746f6d2d6b65790d637573746f6d2d686561646572", (b"custom-key", b"custom-header")),
        ("040c2f73616d706c652f70617468", (b":path", b"/sample/path")),
        ("100870617373776f726406736563726574", (b"password", b"secret")),
        ("82", (b":method", b"GET")),
    ],
    ids=["C.2.1", "C.2.2", "C.2.3", "C.2.4"],
)
def test_rfc_7541_field_representations(block: str, field: tuple[bytes, bytes]) -> None:
    decoder = HeaderDecoder(LIMIT)
    assert decoder.decode(bytes.fromhex(block)) == [field]
    indexed = block.startswith("40")
    assert decoder.table.entries == ([field] if indexed else [])
    assert decoder.table.size == (55 if indexed else 0)
    assert decoder.never_indexed == ([0] if block.startswith("10") else [])


def test_never_indexed_fields_are_encoded_as_such() -> None:
    encoder = HeaderEncoder(huffman=False)
    assert encoder.encode([(b"password", b"secret")], never_indexed=[0]).hex() == (
        "100870617373776f726406736563726574"
    )
    assert encoder.table.entries == []


@pytest.mark.parametrize(
    ("value", "prefix", "encoded"), [(10, 5, "0a"), (1337, 5, "1f9a0a"), (42, 8, "2a")]
)
def test_rfc_7541_integer_examples(value: int, prefix: int, encoded: str) -> None:
    assert encode_integer(0, value, prefix).hex() == encoded


# -- Against the hpack package -------------------------------------------------------------


def test_static_table_is_the_rfcs() -> None:
    assert hpack.table.HeaderTable.STATIC_TABLE == STATIC_TABLE


def test_huffman_code_is_the_rfcs() -> None:
    assert list(REQUEST_CODES) == CODES
    assert list(REQUEST_CODES_LENGTH) == list(CODE_LENGTHS)


@given(st.binary(max_size=300))
def test_huffman_round_trips_with_hpack(data: bytes) -> None:
    theirs = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(data)
    assert huffman_encode(data) == theirs
    assert len(theirs) == huffman_encoded_length(data)
    assert huffman_decode(theirs) == data


# Names and values repeat, as in real traffic, so the dynamic table is used and evicted.
_strings = st.one_of(
    st.sampled_from([b"", b"a", b"content-type", b"text/html", b":path", b"/", b"x" * 300]),
    st.binary(max_size=60),
)
_field = st.tuples(_strings, _strings)
_block = st.lists(st.tuples(_field, st.booleans()), max_size=12)
_connection = st.lists(_block, min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(_connection, st.booleans(), st.sampled_from([0, 64, 256, 4096]))
def test_hasten_encodes_what_hpack_decodes(
    blocks: list[list[tuple[tuple[bytes, bytes], bool]]], huffman: bool, table_size: int
) -> None:
    encoder = HeaderEncoder(huffman=huffman)
    decoder = hpack.Decoder(max_header_list_size=10**6)
    if table_size != 4096:
        encoder.resize(table_size)
    for block in blocks:
        fields = [field for field, _ in block]
        never = [position for position, (_, sensitive) in enumerate(block) if sensitive]
        decoded = decoder.decode(encoder.encode(fields, never_indexed=never), raw=True)
        assert decoded == fields
        assert never_indexed_positions(decoded) == never


# A server sends the same few heads over and over, and the table changes in between.
_head_pool = st.lists(st.lists(_field, max_size=6), min_size=1, max_size=3)
_head_steps = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from([None, None, None, 0, 64, 4096])), max_size=20
)


@settings(max_examples=150, deadline=None)
@given(_head_pool, _head_steps, st.booleans())
def test_repeated_heads_decode_right_however_the_table_changes(
    pool: list[list[tuple[bytes, bytes]]],
    steps: list[tuple[int, int | None]],
    huffman: bool,
) -> None:
    encoder = HeaderEncoder(huffman=huffman)
    decoder = hpack.Decoder(max_header_list_size=10**6)
    for choice, table_size in steps:
        if table_size is not None:
            encoder.resize(table_size)
        fields = pool[choice % len(pool)]
        assert decoder.decode(encoder.encode(fields), raw=True) == fields


def test_a_head_that_leaves_the_table_as_it_was_is_encoded_once() -> None:
    encoder = HeaderEncoder()
    head = [(b":status", b"200"), (b"server", b"hasten"), (b"content-length", b"13")]
    first = encoder.encode(head)  # adds server: hasten to the table
    second = encoder.encode(list(head))
    assert second != first
    assert encoder.encode(list(head)) is second
    encoder.encode([(b"x-new", b"1")])  # a new entry: the indices move
    assert encoder.encode(list(head)) != second


def never_indexed_positions(fields: list[tuple[bytes, bytes]]) -> list[int]:
    return [
        position
        for position, field in enumerate(fields)
        if isinstance(field, NeverIndexedHeaderTuple)
    ]


@settings(max_examples=150, deadline=None)
@given(_connection, st.booleans(), st.sampled_from([0, 64, 256, 4096]))
def test_hasten_decodes_what_hpack_encodes(
    blocks: list[list[tuple[tuple[bytes, bytes], bool]]], huffman: bool, table_size: int
) -> None:
    encoder = hpack.Encoder()
    decoder = HeaderDecoder(10**6)
    # hpack's decoder says which fields its encoder sent as never indexed (it sends a
    # sensitive field already in its table as indexed).
    their_decoder = hpack.Decoder(max_header_list_size=10**6)
    encoder.header_table_size = table_size
    for block in blocks:
        triples = [(name, value, sensitive) for (name, value), sensitive in block]
        encoded = encoder.encode(triples, huffman=huffman)
        assert decoder.decode(encoded) == [field for field, _ in block]
        assert decoder.never_indexed == never_indexed_positions(
            their_decoder.decode(encoded, raw=True)
        )


def test_table_size_updates_tell_the_peer_the_smallest_size_first() -> None:
    encoder = HeaderEncoder()
    decoder = hpack.Decoder()
    decoder.decode(encoder.encode([(b"x-a", b"1")]))
    encoder.resize(0)
    encoder.resize(100)
    block = encoder.encode([(b"x-a", b"1")])
    assert block.startswith(bytes([0x20, 0x3F, 0x45]))  # 0 (x-a is evicted), then 100
    assert decoder.decode(block, raw=True) == [(b"x-a", b"1")]
    assert decoder.header_table.maxsize == 100


# -- Hostile header blocks (RFC 7541 §4.2, §5.1, §5.2, §6; hostile-inputs P18, P19) ------------


def size_update(size: int) -> bytes:
    return encode_integer(0x20, size, 5)


@pytest.mark.parametrize(
    "block",
    [
        b"\x80",  # index 0
        b"\xbe",  # index 62 with an empty dynamic table
        b"\x41",  # a name index with no value after it
        b"\xff\xff\xff\xff\xff\xff\x00",  # an integer past 2^32
        b"\xff\x80",  # a truncated integer
        b"\x00\x05ab",  # a string longer than the block
        b"\x00\x01a\x84\xff\xff\xff\xff",  # Huffman with EOS in it
        b"\x00\x01a\x81\x00",  # Huffman padded with zeros
        b"\x00\x01a\x82\x07\xff",  # Huffman padded with more than 7 bits
        size_update(4097),  # above the advertised table size
        b"\x82" + size_update(0),  # a table size update after a field
    ],
    ids=[
        "index_zero",
        "index_out_of_range",
        "truncated_literal",
        "integer_overflow",
        "truncated_integer",
        "string_past_the_block",
        "huffman_eos",
        "huffman_zero_padding",
        "huffman_long_padding",
        "table_size_above_limit",
        "table_size_update_after_field",
    ],
)
def test_undecodable_blocks_are_compression_errors(block: bytes) -> None:
    with pytest.raises(HeaderCompressionError):
        HeaderDecoder(LIMIT).decode(block)


def test_table_size_updates_at_the_start_of_a_block_are_taken() -> None:
    decoder = HeaderDecoder(LIMIT)
    decoder.decode(bytes.fromhex(C3_BLOCKS[0]))
    assert decoder.decode(size_update(0) + size_update(4096) + b"\x82") == [(b":method", b"GET")]
    assert decoder.table.entries == []


def test_hpack_bomb_stops_at_the_header_list_limit() -> None:
    # CVE-2016-6581: one 4 KB entry, referenced a hundred times in a 5 KB block.
    block = b"\x40\x01a" + encode_string_raw(b"a" * 4000) + b"\xbe" * 100
    with pytest.raises(HeaderListTooLarge):
        HeaderDecoder(LIMIT).decode(block)
    assert len(HeaderDecoder(10**6).decode(block)) == 101


def encode_string_raw(value: bytes) -> bytes:
    return encode_integer(0, len(value), 7) + value


def test_huffman_errors_are_value_errors() -> None:
    with pytest.raises(HuffmanError):
        huffman_decode(b"\xff\xff\xff\xff")
    assert huffman_decode(b"") == b""
