"""PROXY protocol headers as a load balancer writes them (HAProxy's proxy-protocol.txt),
built byte by byte with struct for the tests."""

from __future__ import annotations

import socket
import struct

from hasten.proxy_protocol import V2_SIGNATURE, crc32c

TCP_OVER_IPV4 = 0x11
TCP_OVER_IPV6 = 0x21
UNIX_STREAM = 0x31
PROXY = 0x21
LOCAL = 0x20


def v1(
    source: str = "203.0.113.9",
    destination: str = "10.0.0.1",
    source_port: int = 51000,
    destination_port: int = 443,
    family: str = "TCP4",
) -> bytes:
    return f"PROXY {family} {source} {destination} {source_port} {destination_port}\r\n".encode()


def inet(
    source: str = "203.0.113.9",
    destination: str = "10.0.0.1",
    source_port: int = 51000,
    destination_port: int = 443,
) -> bytes:
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    return (
        socket.inet_pton(family, source)
        + socket.inet_pton(family, destination)
        + struct.pack("!HH", source_port, destination_port)
    )


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def v2(
    addresses: bytes | None = None,
    *,
    command: int = PROXY,
    family: int | None = None,
    tlvs: bytes = b"",
    length: int | None = None,
    checksum: bool = False,
) -> bytes:
    """A v2 header; ``checksum`` appends a PP2_TYPE_CRC32C TLV with the right value."""
    if addresses is None:
        addresses = inet()
    if family is None:
        family = TCP_OVER_IPV6 if len(addresses) == 36 else TCP_OVER_IPV4
    if checksum:
        tlvs += tlv(0x03, b"\0\0\0\0")
    payload = addresses + tlvs
    size = len(payload) if length is None else length
    header = V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", size) + payload
    if checksum:
        header = header[:-4] + struct.pack("!I", crc32c(header))
    return header


def ssl_tlv(
    client: int = 0x01,
    verify: int = 0,
    version: bytes = b"TLSv1.3",
    common_name: bytes | None = None,
    cipher: bytes = b"TLS_AES_128_GCM_SHA256",
) -> bytes:
    """PP2_TYPE_SSL (§2.2.5) as HAProxy's send-proxy-v2-ssl-cn writes it."""
    subs = tlv(0x21, version) + tlv(0x23, cipher)
    if common_name is not None:
        subs += tlv(0x22, common_name)
    return tlv(0x20, bytes([client]) + struct.pack("!I", verify) + subs)
