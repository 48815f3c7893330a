"""RFC 7692 permessage-deflate: the server's answer to a client's offers, and one
connection's compression and bounded decompression, on zlib directly."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

from websockets.headers import parse_extension

# websockets' own serve() defaults: 4 KiB windows both ways and memLevel 5, about 21 KiB
# of zlib state per connection instead of 87 KiB at zlib's defaults.
SERVER_MAX_WINDOW_BITS: Final = 12
CLIENT_MAX_WINDOW_BITS: Final = 12
_MEM_LEVEL: Final = 5
# zlib's raw deflate refuses an 8-bit window ("Invalid initialization option"); inflating
# with a larger window than the sender's is always fine.
_ZLIB_MIN_WINDOW_BITS: Final = 9
# RFC 7692 §7.2.1: a message's compressed data ends with an empty stored block, whose last
# four bytes are left off the wire; the receiver puts them back (§7.2.2).
_SYNC_TAIL: Final = b"\x00\x00\xff\xff"
_NAME: Final = "permessage-deflate"
_PARAMETERS: Final = frozenset(
    {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
)
_WINDOW_BITS: Final = {str(bits): bits for bits in range(8, 16)}


class PerMessageDeflate:
    """The parameters one connection agreed on, and its zlib streams.

    The streams are made when first needed and, without context takeover, dropped after
    each message: an idle connection holds no zlib state it does not have to.
    """

    __slots__ = (
        "client_max_window_bits",
        "client_no_context_takeover",
        "compressor",
        "decompressor",
        "server_max_window_bits",
        "server_no_context_takeover",
    )

    def __init__(
        self,
        server_max_window_bits: int = SERVER_MAX_WINDOW_BITS,
        client_max_window_bits: int = 15,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
    ) -> None:
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.compressor: zlib._Compress | None = None
        self.decompressor: zlib._Decompress | None = None

    def inflate(self, data: bytes, fin: bool, limit: int) -> bytes:
        """Decompress one frame's payload of a message; ``fin`` ends the message. Raises
        ValueError past ``limit`` bytes of output (a deflate bomb stops there: zlib is
        never asked for more), and zlib.error on data that is not deflate."""
        decompressor = self.decompressor
        if decompressor is None:
            bits = max(self.client_max_window_bits, _ZLIB_MIN_WINDOW_BITS)
            decompressor = self.decompressor = zlib.decompressobj(-bits)
        if fin:
            data += _SYNC_TAIL
        # max_length 0 would mean no limit: limit + 1 is at least 1.
        inflated = decompressor.decompress(data, limit + 1)
        if len(inflated) > limit:
            raise ValueError(f"message over the size limit once decompressed ({limit} bytes left)")
        if fin and (self.client_no_context_takeover or decompressor.eof):
            # Without context takeover (or after a final deflate block) the next message
            # starts a new stream.
            self.decompressor = None
        return inflated

    def deflate(self, data: bytes) -> bytes:
        """One whole message, compressed (RFC 7692 §7.2.1)."""
        compressor = self.compressor
        if compressor is None:
            compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.server_max_window_bits, _MEM_LEVEL
            )
        compressed = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        self.compressor = None if self.server_no_context_takeover else compressor
        return compressed[: -len(_SYNC_TAIL)]


def negotiate(header_values: list[str]) -> tuple[str, PerMessageDeflate] | None:
    """The ``Sec-WebSocket-Extensions`` answer to the request's values of that field, and
    the extension it agrees to; None if no offer is acceptable. Raises websockets'
    InvalidHandshake for a field that is not the RFC's syntax (answered 400)."""
    for value in header_values:
        for name, parameters in parse_extension(value):
            if name == _NAME:
                accepted = _accept(parameters)
                if accepted is not None:
                    return accepted
    return None


def _accept(parameters: Sequence[tuple[str, str | None]]) -> tuple[str, PerMessageDeflate] | None:
    """The answer to one offer (RFC 7692 §7.1), or None to decline it (§5: the server
    then looks at the next)."""
    offered: dict[str, str | None] = {}
    for name, value in parameters:
        if name not in _PARAMETERS or name in offered:
            # §7.1: an unknown or repeated parameter makes the offer invalid.
            return None
        offered[name] = value
    answer = [_NAME]
    server_no_context_takeover = "server_no_context_takeover" in offered
    client_no_context_takeover = "client_no_context_takeover" in offered
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in offered:
            if offered[flag] is not None:
                return None  # §7.1.1: these parameters have no value
            answer.append(flag)
    server_bits = SERVER_MAX_WINDOW_BITS
    if "server_max_window_bits" in offered:
        requested = _WINDOW_BITS.get(offered["server_max_window_bits"] or "")
        if requested is None or requested < _ZLIB_MIN_WINDOW_BITS:
            # §7.1.2.1: a value from 8 to 15 is required; zlib cannot compress with 8.
            return None
        server_bits = min(requested, SERVER_MAX_WINDOW_BITS)
    answer.append(f"server_max_window_bits={server_bits}")
    client_bits = 15
    if "client_max_window_bits" in offered:
        # §7.1.2.2: the client may offer it without a value, and then the server may
        # bound the client's window; without the offer it may not.
        value = offered["client_max_window_bits"]
        limit = 15 if value is None else _WINDOW_BITS.get(value)
        if limit is None:
            return None
        client_bits = min(limit, CLIENT_MAX_WINDOW_BITS)
        answer.append(f"client_max_window_bits={client_bits}")
    extension = PerMessageDeflate(
        server_bits, client_bits, server_no_context_takeover, client_no_context_takeover
    )
    return "; ".join(answer), extension
