"""The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), sans I/O.

A load balancer that relays TCP (HAProxy, AWS NLB, Envoy) writes one header before the
client's first byte, saying whom it relays. ``parse_proxy_header`` is given the bytes read
so far and answers with the header, ``None`` for "need more", or raises
``ProxyProtocolError``; it never reads a socket, and never raises anything else, whatever
the bytes. Section numbers below are the spec's.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

# §2.1: "PROXY" SP protocol ... CRLF, 107 bytes at most with the CRLF.
V1_PREFIX: Final = b"PROXY "
V1_MAX_LENGTH: Final = 107
# §2.2: the 12-byte signature, then version/command, family/transport and a 16-bit length.
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_LENGTH: Final = 16
# §2.2: an AF_UNIX address block (2 x 108 bytes) is the largest; any bound must admit it.
V2_MIN_LIMIT: Final = V2_FIXED_LENGTH + 216
V2_MAX_LENGTH: Final = V2_FIXED_LENGTH + 0xFFFF

_V2_LOCAL: Final = 0x0
_V2_PROXY: Final = 0x1
# §2.2, 14th byte: the only family/transport pairs a receiver may accept ("other values ...
# must be rejected as invalid"); of those, hasten serves streams, so no UDP (0x12/0x22/0x32).
_AF_UNSPEC: Final = 0x00
_TCP_OVER_IPV4: Final = 0x11
_TCP_OVER_IPV6: Final = 0x21
_UNIX_STREAM: Final = 0x31
_ADDRESS_BLOCK_LENGTHS: Final = {
    _AF_UNSPEC: 0,
    _TCP_OVER_IPV4: 12,
    _TCP_OVER_IPV6: 36,
    _UNIX_STREAM: 216,
}

# §2.2.1-2.2.7: the TLV types read here.
PP2_TYPE_CRC32C: Final = 0x03
PP2_TYPE_SSL: Final = 0x20
PP2_SUBTYPE_SSL_VERSION: Final = 0x21
PP2_SUBTYPE_SSL_CN: Final = 0x22
PP2_SUBTYPE_SSL_CIPHER: Final = 0x23
PP2_SUBTYPE_SSL_SIG_ALG: Final = 0x24
PP2_SUBTYPE_SSL_KEY_ALG: Final = 0x25
# §2.2.5, the ``client`` bits of PP2_TYPE_SSL.
PP2_CLIENT_SSL: Final = 0x01
PP2_CLIENT_CERT_CONN: Final = 0x02
PP2_CLIENT_CERT_SESS: Final = 0x04


class ProxyProtocolError(ValueError):
    """The bytes are not a valid PROXY protocol header (the connection must be closed)."""


@dataclass(frozen=True, slots=True)
class ProxySSL:
    """What PP2_TYPE_SSL (§2.2.5) says of the client's TLS connection to the proxy."""

    client: int
    verify: int
    version: str | None = None
    common_name: str | None = None
    cipher: str | None = None
    signature_algorithm: str | None = None
    key_algorithm: str | None = None

    @property
    def over_tls(self) -> bool:
        return bool(self.client & PP2_CLIENT_SSL)

    @property
    def presented_certificate(self) -> bool:
        return bool(self.client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS))


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header. ``client``/``server`` are the source and destination when the
    header names TCP endpoints, else ``None``: LOCAL (a health check from the proxy itself),
    v1 UNKNOWN, v2 UNSPEC and AF_UNIX, for which the connection's own addresses stand."""

    version: int
    length: int
    client: tuple[str, int] | None = None
    server: tuple[str, int] | None = None
    local: bool = False
    tlvs: tuple[tuple[int, bytes], ...] = ()
    ssl: ProxySSL | None = None


def parse_proxy_header(data: bytes, max_length: int = 4096) -> ProxyHeader | None:
    """The header at the start of ``data``, or ``None`` if more bytes are needed.

    ``max_length`` bounds a v2 header (§2.2 lets its length reach 64 KiB); a v1 line is
    bounded by the spec. Raises ``ProxyProtocolError`` as soon as the bytes can't begin a
    valid header, so a byte-by-byte sender is refused at its first wrong byte.
    """
    if data.startswith(V2_SIGNATURE):
        return _parse_v2(data, max_length)
    if data.startswith(V1_PREFIX):
        return _parse_v1(data)
    if not (V2_SIGNATURE.startswith(data) or V1_PREFIX.startswith(data)):
        raise ProxyProtocolError("no PROXY protocol signature")
    return None


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError("v1 header longer than 107 bytes")
        # A CR at the end may be the first half of the CRLF still to come.
        _check_v1_bytes(data[:-1] if data.endswith(b"\r") else data)
        return None
    line = data[:end]
    _check_v1_bytes(line)
    fields = line.split(b" ")
    if fields[1] == b"UNKNOWN":
        # §2.1: with UNKNOWN the receiver ignores the rest of the line.
        return ProxyHeader(version=1, length=end + 2)
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise ProxyProtocolError("v1 header is not PROXY TCP4|TCP6 src dst sport dport")
    version = 4 if fields[1] == b"TCP4" else 6
    source = _v1_address(fields[2], version)
    destination = _v1_address(fields[3], version)
    return ProxyHeader(
        version=1,
        length=end + 2,
        client=(source, _v1_port(fields[4])),
        server=(destination, _v1_port(fields[5])),
    )


def _check_v1_bytes(data: bytes) -> None:
    # §2.1: the line is US-ASCII; a control byte (a bare CR or LF, NUL) or any byte above
    # 0x7E means this is not a v1 header.
    if not data.isascii() or any(byte < 0x20 or byte == 0x7F for byte in data):
        raise ProxyProtocolError("v1 header has a byte that is not printable ASCII")


def _v1_address(text: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except ValueError:
        raise ProxyProtocolError("v1 header has an invalid address") from None
    if address.version != version:
        raise ProxyProtocolError("v1 address does not match its TCP4/TCP6 family")
    return str(address)


def _v1_port(text: bytes) -> int:
    # §2.1: a port is a decimal number 0..65535; no sign, no leading zero.
    if not (text.isdigit() and len(text) <= 5) or (text[:1] == b"0" and text != b"0"):
        raise ProxyProtocolError("v1 header has an invalid port")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError("v1 header has an invalid port")
    return port


def _parse_v2(data: bytes, max_length: int) -> ProxyHeader | None:
    if len(data) < V2_FIXED_LENGTH:
        return None
    version_command, family, length = data[12], data[13], int.from_bytes(data[14:16], "big")
    if version_command >> 4 != 2:
        raise ProxyProtocolError("v2 header with a version other than 2")
    command = version_command & 0x0F
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyProtocolError("v2 header with an unknown command")
    if family not in _ADDRESS_BLOCK_LENGTHS:
        raise ProxyProtocolError("v2 header with an unknown or datagram address family")
    total = V2_FIXED_LENGTH + length
    if total > max_length:
        raise ProxyProtocolError(f"v2 header of {total} bytes is over the limit ({max_length})")
    if len(data) < total:
        return None
    if command == _V2_LOCAL:
        # §2.2: LOCAL is the proxy speaking for itself; its address block is skipped.
        return ProxyHeader(version=2, length=total, local=True)
    block_length = _ADDRESS_BLOCK_LENGTHS[family]
    if length < block_length:
        raise ProxyProtocolError("v2 header shorter than its address block")
    client: tuple[str, int] | None = None
    server: tuple[str, int] | None = None
    if family == _TCP_OVER_IPV4:
        source, destination, source_port, destination_port = struct.unpack_from("!4s4sHH", data, 16)
        client = (str(ipaddress.IPv4Address(source)), source_port)
        server = (str(ipaddress.IPv4Address(destination)), destination_port)
    elif family == _TCP_OVER_IPV6:
        source, destination, source_port, destination_port = struct.unpack_from(
            "!16s16sHH", data, 16
        )
        client = (str(ipaddress.IPv6Address(source)), source_port)
        server = (str(ipaddress.IPv6Address(destination)), destination_port)
    if family == _AF_UNSPEC:
        # §2.2: with UNSPEC the receiver ignores what follows; nothing says it is TLVs.
        return ProxyHeader(version=2, length=total)
    start = V2_FIXED_LENGTH + block_length
    tlvs = _parse_tlvs(data[start:total])
    ssl: ProxySSL | None = None
    for kind, offset, value in tlvs:
        if kind == PP2_TYPE_CRC32C:
            _check_crc32c(data[:total], start + offset, value)
        elif kind == PP2_TYPE_SSL:
            ssl = _parse_ssl(value)
    return ProxyHeader(
        version=2,
        length=total,
        client=client,
        server=server,
        tlvs=tuple((kind, value) for kind, _, value in tlvs),
        ssl=ssl,
    )


def _parse_tlvs(data: bytes) -> list[tuple[int, int, bytes]]:
    """§2.2.7: type (1 byte), length (2 bytes), value; they must fill ``data`` exactly.
    Each is returned as (type, offset of its value in ``data``, value)."""
    tlvs: list[tuple[int, int, bytes]] = []
    offset = 0
    while offset < len(data):
        if offset + 3 > len(data):
            raise ProxyProtocolError("v2 header with a truncated TLV")
        kind = data[offset]
        length = int.from_bytes(data[offset + 1 : offset + 3], "big")
        end = offset + 3 + length
        if end > len(data):
            raise ProxyProtocolError("v2 header with a TLV longer than the header")
        tlvs.append((kind, offset + 3, data[offset + 3 : end]))
        offset = end
    return tlvs


def _parse_ssl(value: bytes) -> ProxySSL:
    """§2.2.5: client (1 byte), verify (4 bytes), then sub-TLVs."""
    if len(value) < 5:
        raise ProxyProtocolError("v2 header with a truncated PP2_TYPE_SSL")
    strings: dict[int, str] = {}
    for kind, _, sub_value in _parse_tlvs(value[5:]):
        if PP2_SUBTYPE_SSL_VERSION <= kind <= PP2_SUBTYPE_SSL_KEY_ALG:
            # §2.2.5: US-ASCII strings (the CN is UTF-8, §2.2.5 PP2_SUBTYPE_SSL_CN).
            strings[kind] = sub_value.decode("utf-8", "replace")
    return ProxySSL(
        client=value[0],
        verify=int.from_bytes(value[1:5], "big"),
        version=strings.get(PP2_SUBTYPE_SSL_VERSION),
        common_name=strings.get(PP2_SUBTYPE_SSL_CN),
        cipher=strings.get(PP2_SUBTYPE_SSL_CIPHER),
        signature_algorithm=strings.get(PP2_SUBTYPE_SSL_SIG_ALG),
        key_algorithm=strings.get(PP2_SUBTYPE_SSL_KEY_ALG),
    )


def _check_crc32c(header: bytes, position: int, value: bytes) -> None:
    """§2.2.3: the CRC32c of the whole header with the checksum's own bytes as zeros."""
    if len(value) != 4:
        raise ProxyProtocolError("v2 header with a malformed PP2_TYPE_CRC32C")
    zeroed = header[:position] + b"\0\0\0\0" + header[position + 4 :]
    if crc32c(zeroed) != int.from_bytes(value, "big"):
        raise ProxyProtocolError("v2 header fails its CRC32c checksum")


def _crc32c_table() -> list[int]:
    table = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE: Final = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 3720 §B.4), as the spec's PP2_TYPE_CRC32C uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
