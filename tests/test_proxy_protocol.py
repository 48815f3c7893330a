"""The PROXY protocol parser, sans I/O: valid headers as HAProxy, AWS NLB and Envoy write
them, and every malformed one refused with ProxyProtocolError, never another exception."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hasten.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocolError,
    ProxySSL,
    parse_proxy_header,
)
from tests.proxy_protocol_support import (
    LOCAL,
    TCP_OVER_IPV6,
    UNIX_STREAM,
    inet,
    ssl_tlv,
    tlv,
    v1,
    v2,
)

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"

# -- version 1 -----------------------------------------------------------------------------


def test_v1_tcp4_names_the_client_and_the_address_it_reached() -> None:
    header = parse_proxy_header(v1() + REQUEST)
    assert header == ProxyHeader(
        version=1,
        length=len(v1()),
        client=("203.0.113.9", 51000),
        server=("10.0.0.1", 443),
    )


def test_v1_tcp6() -> None:
    line = v1("2001:db8::1", "2001:db8::2", 4711, 80, family="TCP6")
    header = parse_proxy_header(line)
    assert header is not None
    assert header.client == ("2001:db8::1", 4711)


def test_v1_unknown_keeps_the_connection_addresses_and_ignores_the_rest_of_the_line() -> None:
    for line in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"):
        assert parse_proxy_header(line) == ProxyHeader(version=1, length=len(line))


def test_v1_of_the_longest_form_is_accepted() -> None:
    line = v1(
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        65535,
        65535,
        family="TCP6",
    )
    assert len(line) == 104
    assert parse_proxy_header(line) is not None


@pytest.mark.parametrize("size", range(1, 43))
def test_every_prefix_of_a_v1_header_needs_more(size: int) -> None:
    assert parse_proxy_header(v1()[:size]) is None


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 203.0.113.9 10.0.0.1 51000\r\n",  # a field missing
        b"PROXY TCP4 203.0.113.9 10.0.0.1 51000 443 x\r\n",  # one too many
        b"PROXY TCP4  203.0.113.9 10.0.0.1 51000 443\r\n",  # two spaces
        b"PROXY TCP5 203.0.113.9 10.0.0.1 51000 443\r\n",
        b"PROXY tcp4 203.0.113.9 10.0.0.1 51000 443\r\n",
        b"PROXY TCP4 2001:db8::1 10.0.0.1 51000 443\r\n",  # family mismatch
        b"PROXY TCP6 203.0.113.9 10.0.0.1 51000 443\r\n",
        b"PROXY TCP4 203.0.113.256 10.0.0.1 51000 443\r\n",
        b"PROXY TCP4 203.0.113.09 10.0.0.1 51000 443\r\n",
        b"PROXY TCP4 example.com 10.0.0.1 51000 443\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.1 65536 443\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.1 051000 443\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.1 +5100 443\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.1 -1 443\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.1 \xd9\xa5 443\r\n",  # non-ASCII (Arabic-Indic 5)
        b"PROXY TCP4 203.0.113.9\x00 10.0.0.1 51000 443\r\n",
        b"PROXY TCP4 203.0.113.9 10.0.0.1 51000 443\n",  # bare LF
        b"PROXY TCP4 203.0.113.9 10.0.0.1 51000 443\r\r\n",
        b"PROXY \r\n",
        b"PROXY\r\n",
        b"GET / HTTP/1.1\r\n",  # no header at all
        b"\x16\x03\x01\x02\x00",  # a TLS ClientHello
        b"proxy TCP4",
    ],
)
def test_malformed_v1_is_refused(line: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(line)


def test_v1_line_over_107_bytes_is_refused_without_waiting_for_its_end() -> None:
    with pytest.raises(ProxyProtocolError, match="107"):
        parse_proxy_header(b"PROXY UNKNOWN " + b"x" * 93)
    assert parse_proxy_header(b"PROXY UNKNOWN " + b"x" * 92) is None


def test_non_ascii_in_an_unfinished_v1_line_is_refused_at_once() -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header("PROXY TCP4 2Ö3".encode())


# -- version 2 -----------------------------------------------------------------------------


def test_v2_tcp_over_ipv4() -> None:
    header = parse_proxy_header(v2() + REQUEST)
    assert header == ProxyHeader(
        version=2, length=28, client=("203.0.113.9", 51000), server=("10.0.0.1", 443)
    )


def test_v2_tcp_over_ipv6() -> None:
    header = parse_proxy_header(v2(inet("2001:db8::1", "2001:db8::2", 4711, 443)))
    assert header is not None
    assert header.client == ("2001:db8::1", 4711)
    assert header.length == 16 + 36


def test_v2_local_is_the_proxys_own_connection_whatever_its_block_holds() -> None:
    header = parse_proxy_header(v2(inet(), command=LOCAL))
    assert header == ProxyHeader(version=2, length=28, local=True)


def test_v2_unspec_and_unix_keep_the_connection_addresses() -> None:
    assert parse_proxy_header(v2(b"", family=0x00)) == ProxyHeader(version=2, length=16)
    unix = v2(b"/run/client.sock".ljust(108, b"\0") * 2, family=UNIX_STREAM)
    header = parse_proxy_header(unix)
    assert header is not None
    assert header.client is None


def test_aws_nlb_tlv_is_kept_and_its_address_used() -> None:
    # AWS NLB: PP2_TYPE_AWS (0xEA), subtype 0x01 then the VPC endpoint ID.
    vpce = tlv(0xEA, b"\x01vpce-08d2bf15fac5001c9")
    header = parse_proxy_header(v2(tlvs=vpce))
    assert header is not None
    assert header.client == ("203.0.113.9", 51000)
    assert header.tlvs == ((0xEA, b"\x01vpce-08d2bf15fac5001c9"),)


def test_v2_ssl_tlv_is_read() -> None:
    header = parse_proxy_header(v2(tlvs=ssl_tlv(client=0x07, common_name=b"alice")))
    assert header is not None
    assert header.ssl == ProxySSL(
        client=0x07,
        verify=0,
        version="TLSv1.3",
        common_name="alice",
        cipher="TLS_AES_128_GCM_SHA256",
    )
    assert header.ssl.over_tls and header.ssl.presented_certificate


def test_v2_with_a_correct_crc32c_is_accepted() -> None:
    assert parse_proxy_header(v2(tlvs=tlv(0x04, b"noop"), checksum=True)) is not None


def test_v2_with_a_wrong_crc32c_is_refused() -> None:
    header = bytearray(v2(checksum=True))
    header[20] ^= 1  # a bit of the source address
    with pytest.raises(ProxyProtocolError, match="CRC32c"):
        parse_proxy_header(bytes(header))


@pytest.mark.parametrize("size", range(1, 28))
def test_every_prefix_of_a_v2_header_needs_more(size: int) -> None:
    assert parse_proxy_header(v2()[:size]) is None


@pytest.mark.parametrize(
    "header",
    [
        b"\r\n\r\n\x00\r\nQUIT!" + v2()[12:],  # bad signature
        b"\r\n\r\n\x01",
        V2_SIGNATURE + b"\x11\x11\x00\x0c" + inet(),  # version 1 in a v2 header
        V2_SIGNATURE + b"\x22\x11\x00\x0c" + inet(),  # command 2
        V2_SIGNATURE + b"\x21\x41\x00\x0c" + inet(),  # family 4
        V2_SIGNATURE + b"\x21\x13\x00\x0c" + inet(),  # transport 3
        V2_SIGNATURE + b"\x21\x12\x00\x0c" + inet(),  # UDP: hasten serves streams
        v2(inet(), length=11),  # shorter than its address block
        v2(inet(), length=8),
        v2(inet("2001:db8::1", "2001:db8::2"), family=TCP_OVER_IPV6, length=35),
        v2(tlvs=b"\x04\x00"),  # a truncated TLV head
        v2(tlvs=b"\x04\x00\x05abc"),  # a TLV longer than the header
        v2(tlvs=tlv(0x20, b"\x01\x00\x00")),  # a truncated PP2_TYPE_SSL
        v2(tlvs=tlv(0x20, b"\x01\x00\x00\x00\x00\x21\x00\x09TLS")),  # a truncated sub-TLV
        v2(tlvs=tlv(0x03, b"\x00\x00")),  # a CRC32c of two bytes
    ],
)
def test_malformed_v2_is_refused(header: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(header)


def test_v2_length_over_the_limit_is_refused_before_its_payload_arrives() -> None:
    fixed = v2(tlvs=b"\x04\x10\x00" + b"\0" * 4096)[:16]
    with pytest.raises(ProxyProtocolError, match="over the limit"):
        parse_proxy_header(fixed, max_length=4096)
    assert parse_proxy_header(fixed, max_length=8192) is None


@given(st.binary(max_size=300))
def test_any_bytes_give_a_header_need_more_or_the_parsers_own_error(data: bytes) -> None:
    with contextlib.suppress(ProxyProtocolError):
        parse_proxy_header(data)


@given(st.binary(max_size=200))
def test_any_bytes_after_a_v2_signature_never_raise_another_exception(rest: bytes) -> None:
    with contextlib.suppress(ProxyProtocolError):
        parse_proxy_header(V2_SIGNATURE + rest)


@given(st.binary(max_size=120))
def test_any_bytes_after_the_v1_prefix_never_raise_another_exception(rest: bytes) -> None:
    with contextlib.suppress(ProxyProtocolError):
        parse_proxy_header(b"PROXY " + rest)
