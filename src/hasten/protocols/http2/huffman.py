"""The Huffman code of HPACK string literals (RFC 7541 §5.2, Appendix B), both ways.

Appendix B's code is canonical: within one code length the codes count up in symbol order,
and each length continues where the shorter one stopped. So the code lengths below are the
whole table, and the codes, the decoding tree and the decoder's state table are derived from
them at import. Decoding walks the tree four bits at a time: one table lookup per nibble, no
per-bit work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

EOS: Final = 256

# RFC 7541 Appendix B, by code length: the symbols (octets, and EOS) coded with that many bits;
# the rarer octets in hex.
_SYMBOLS_BY_CODE_LENGTH: Final[tuple[tuple[int, Sequence[int]], ...]] = (
    (5, b"012aceiost"),
    (6, b" %-./3456789=A_bdfghlmnpru"),
    (7, b":BCDEFGHIJKLMNOPQRSTUVWYjkqvwxyz"),
    (8, b"&*,;XZ"),
    (10, b'!"()?'),
    (11, b"'+|"),
    (12, b"#>"),
    (13, b"\x00$@[]~"),
    (14, b"^}"),
    (15, b"<`{"),
    (19, bytes.fromhex("5c c3 d0")),
    (20, bytes.fromhex("80 82 83 a2 b8 c2 e0 e2")),
    (21, bytes.fromhex("99 a1 a7 ac b0 b1 b3 d1 d8 d9 e3 e5 e6")),
    (
        22,
        bytes.fromhex(
            "81 84 85 86 88 92 9a 9c a0 a3 a4 a9 aa ad b2 b5 b9 ba bb bd be c4 c6 e4 e8 e9"
        ),
    ),
    (
        23,
        bytes.fromhex(
            "01 87 89 8a 8b 8c 8d 8f 93 95 96 97 98 9b 9d 9e a5 a6 a8 ae af b4 b6 b7 bc bf c5 e7 ef"
        ),
    ),
    (24, bytes.fromhex("09 8e 90 91 94 9f ab ce d7 e1 ec ed")),
    (25, bytes.fromhex("c7 cf ea eb")),
    (26, bytes.fromhex("c0 c1 c8 c9 ca cd d2 d5 da db ee f0 f2 f3 ff")),
    (27, bytes.fromhex("cb cc d3 d4 d6 dd de df f1 f4 f5 f6 f7 f8 fa fb fc fd fe")),
    (
        28,
        bytes.fromhex(
            "02 03 04 05 06 07 08 0b 0c 0e 0f 10 11 12 13 14 15 17 18 19 1a 1b 1c 1d 1e 1f 7f dc f9"
        ),
    ),
    (30, (10, 13, 22, EOS)),
)


class HuffmanError(ValueError):
    """A Huffman-coded string that RFC 7541 §5.2 calls a decoding error: it contains EOS,
    or ends in padding that is longer than 7 bits or not the leading bits of EOS."""


def _canonical_codes() -> tuple[list[int], bytes]:
    """Each symbol's code and code length, the codes assigned in canonical order."""
    codes = [0] * (EOS + 1)
    lengths = [0] * (EOS + 1)
    code = 0
    previous_length = 0
    for length, symbols in _SYMBOLS_BY_CODE_LENGTH:
        code <<= length - previous_length
        previous_length = length
        for symbol in sorted(symbols):
            codes[symbol] = code
            lengths[symbol] = length
            code += 1
    # A complete prefix code ends with the all-ones code of the longest length.
    assert code == 1 << previous_length and all(lengths), "Appendix B transcribed wrongly"
    return codes, bytes(lengths)


_CANONICAL_CODES: Final = _canonical_codes()
CODES: Final[list[int]] = _CANONICAL_CODES[0]
CODE_LENGTHS: Final[bytes] = _CANONICAL_CODES[1]

# The decoding tree's internal nodes are its states (the root is 0); a child is a node's
# number, or ~symbol for a leaf.
_NO_CHILD: Final = 1 << 20


def _decoding_tree() -> tuple[list[int], list[int]]:
    """The children of each internal node: on a 0 bit and on a 1 bit."""
    zero = [_NO_CHILD]
    one = [_NO_CHILD]
    for symbol in range(EOS + 1):
        node = 0
        code = CODES[symbol]
        for depth in range(CODE_LENGTHS[symbol] - 1, -1, -1):
            children = one if code >> depth & 1 else zero
            if depth == 0:
                children[node] = ~symbol
            else:
                if children[node] == _NO_CHILD:
                    children[node] = len(zero)
                    zero.append(_NO_CHILD)
                    one.append(_NO_CHILD)
                node = children[node]
    assert len(zero) == EOS and _NO_CHILD not in zero and _NO_CHILD not in one
    return zero, one


# A nibble transition packs the next state (bits 10+), whether it decoded EOS (bit 9: an
# error wherever it appears), whether it decoded a symbol (bit 8) and the symbol (bits 0-7).
_DECODED: Final = 1 << 8
_DECODED_EOS: Final = 1 << 9
_STATE_SHIFT: Final = 10


def _nibble_transitions() -> tuple[list[int], bytes]:
    """The transition on each nibble from each state, and which states may end a string.

    A nibble decodes at most one symbol, since no code is shorter than 5 bits.
    """
    zero, one = _decoding_tree()
    transitions: list[int] = []
    for state in range(len(zero)):
        for nibble in range(16):
            node = state
            decoded = 0
            for shift in (3, 2, 1, 0):
                child = (one if nibble >> shift & 1 else zero)[node]
                if child >= 0:
                    node = child
                elif ~child == EOS:
                    decoded = _DECODED_EOS
                    break
                else:
                    decoded = _DECODED | ~child
                    node = 0
            transitions.append(node << _STATE_SHIFT | decoded)
    # The padding a string may end in: up to 7 one bits, the start of EOS.
    accepting = bytearray(len(zero))
    node = 0
    for _ in range(8):
        accepting[node] = 1
        node = one[node]
    return transitions, bytes(accepting)


_DECODING_TABLES: Final = _nibble_transitions()
_TRANSITIONS: Final[list[int]] = _DECODING_TABLES[0]
_ACCEPTING: Final[bytes] = _DECODING_TABLES[1]


def huffman_decode(data: bytes) -> bytes:
    """The octets ``data`` codes; :class:`HuffmanError` if it is not a valid coding."""
    transitions = _TRANSITIONS
    # A list, not a bytearray: compiled, appending to it is a primitive, not a method call.
    decoded: list[int] = []
    state = 0
    for octet in data:
        step = transitions[state << 4 | octet >> 4]
        if step & _DECODED:
            decoded.append(step & 0xFF)
        elif step & _DECODED_EOS:
            raise HuffmanError("EOS in a Huffman-coded string")
        state = step >> _STATE_SHIFT
        step = transitions[state << 4 | octet & 0xF]
        if step & _DECODED:
            decoded.append(step & 0xFF)
        elif step & _DECODED_EOS:
            raise HuffmanError("EOS in a Huffman-coded string")
        state = step >> _STATE_SHIFT
    if not _ACCEPTING[state]:
        raise HuffmanError("a Huffman-coded string ends in invalid padding")
    return bytes(decoded)


def huffman_encoded_length(data: bytes) -> int:
    """How many octets ``huffman_encode(data)`` takes."""
    lengths = CODE_LENGTHS
    bits = 0
    for octet in data:
        bits += lengths[octet]
    return (bits + 7) >> 3


def huffman_encode(data: bytes) -> bytes:
    """``data`` Huffman-coded, padded to an octet with the leading bits of EOS."""
    codes = CODES
    lengths = CODE_LENGTHS
    encoded: list[int] = []
    # Fewer than 8 bits wait between octets, so ``pending`` stays within 38 bits.
    pending = 0
    pending_bits = 0
    for octet in data:
        length = lengths[octet]
        pending = pending << length | codes[octet]
        pending_bits += length
        while pending_bits >= 8:
            pending_bits -= 8
            encoded.append(pending >> pending_bits & 0xFF)
        pending &= (1 << pending_bits) - 1
    if pending_bits:
        encoded.append((pending << (8 - pending_bits) | 0xFF >> pending_bits) & 0xFF)
    return bytes(encoded)
