"""Listening addresses: parsed, bound for real, and described as the log shows them."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hasten import Config
from hasten.binds import (
    InheritedSocket,
    ListenAddress,
    TCPAddress,
    UnixAddress,
    UnixSocketFile,
    bind,
    bind_all,
    bind_listening,
    describe,
    parse_address,
    parse_host_port,
    parse_mode,
    reserve_port,
)
from tests.harness import skip_without_ipv6_loopback


@pytest.fixture
def closing() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0.0.0.0:8000", TCPAddress("0.0.0.0", 8000)),
        ("example.org:80", TCPAddress("example.org", 80)),
        ("[::1]:9100", TCPAddress("::1", 9100)),
        ("[::]:0", TCPAddress("::", 0)),
        (":9100", TCPAddress("127.0.0.1", 9100)),
        ("unix:/run/app.sock", UnixAddress("/run/app.sock", 0o666)),
        ("fd://3", InheritedSocket(3)),
    ],
)
def test_each_address_form_is_parsed(text: str, address: object) -> None:
    assert parse_address(text) == address


def test_a_unix_address_takes_the_mode_it_is_given() -> None:
    assert parse_address("unix:/tmp/a.sock", uds_mode=0o600) == UnixAddress("/tmp/a.sock", 0o600)


@pytest.mark.parametrize(
    "text", ["localhost", "host:http", "host:65536", "host:-1", "unix:", "fd://", "fd://x", ""]
)
def test_a_malformed_address_is_a_value_error_listing_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT, \[IPv6\]:PORT, unix:PATH or fd://N"):
        parse_address(text)


def test_host_port_only_refuses_unix_and_fd_forms() -> None:
    with pytest.raises(ValueError, match="use HOST:PORT"):
        parse_host_port("unix:/run/app.sock")
    with pytest.raises(ValueError, match="use HOST:PORT"):
        parse_host_port("fd://3")


@pytest.mark.parametrize(
    ("text", "bits"),
    [("666", 0o666), ("0660", 0o660), ("0o600", 0o600), (" 7 ", 0o7), ("8", None), ("", None)],
)
def test_mode_is_read_as_octal_permission_bits(text: str, bits: int | None) -> None:
    assert parse_mode(text) == bits


def test_mode_above_0o777_is_refused() -> None:
    assert parse_mode("1777") is None


def test_config_listens_on_fd_else_uds_else_host_and_port() -> None:
    tcp = Config(app="m:a", host="::1", port=0)
    assert tcp.listen_addresses == [ListenAddress(TCPAddress("::1", 0))]
    uds = Config(app="m:a", uds="/tmp/x.sock", uds_mode="600")
    assert uds.listen_addresses == [ListenAddress(UnixAddress("/tmp/x.sock", 0o600))]
    fd = Config(app="m:a", uds="/tmp/x.sock", fd=7)
    assert fd.listen_addresses == [ListenAddress(InheritedSocket(7))]


def test_config_listens_on_every_bind_then_every_insecure_bind() -> None:
    config = Config(
        app="m:a",
        bind=["0.0.0.0:8443", "unix:/tmp/x.sock", "fd://3"],
        insecure_bind=["[::]:8080"],
        uds_mode="600",
        ssl_certfile="cert.pem",
    )
    assert config.listen_addresses == [
        ListenAddress(TCPAddress("0.0.0.0", 8443)),
        ListenAddress(UnixAddress("/tmp/x.sock", 0o600)),
        ListenAddress(InheritedSocket(3)),
        ListenAddress(TCPAddress("::", 8080), insecure=True),
    ]


def test_insecure_binds_are_added_to_host_and_port() -> None:
    config = Config(app="m:a", port=8443, insecure_bind=[":8080"], ssl_certfile="cert.pem")
    assert config.listen_addresses == [
        ListenAddress(TCPAddress("127.0.0.1", 8443)),
        ListenAddress(TCPAddress("127.0.0.1", 8080), insecure=True),
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bind": ["localhost"]}, "bind: 'localhost' is not allowed; use HOST:PORT, [IPv6]:PORT"),
        ({"bind": [":80", "127.0.0.1:80"]}, "bind: '127.0.0.1:80' is the same address as another"),
        (
            {"bind": ["unix:/tmp/a.sock"], "insecure_bind": ["unix:/tmp/../tmp/a.sock"]},
            "insecure_bind: 'unix:/tmp/../tmp/a.sock' is the same address as another",
        ),
        ({"insecure_bind": ["127.0.0.1:8000"]}, "insecure_bind: '127.0.0.1:8000' is the same"),
        (
            {"bind": [":80"], "port": 81},
            "port=81 cannot be combined with bind; give every address "
            "as a bind instead (here: '127.0.0.1:81')",
        ),
        ({"bind": [":80"], "host": "::1"}, "(here: '[::1]:8000')"),
        ({"bind": [":80"], "uds": "/tmp/a.sock"}, "(here: 'unix:/tmp/a.sock')"),
        ({"bind": [":80"], "fd": 3}, "fd=3 cannot be combined with bind"),
    ],
)
def test_bad_or_conflicting_binds_are_refused_naming_the_setting(
    settings: dict[str, Any], message: str
) -> None:
    settings.setdefault("ssl_certfile", "cert.pem")
    with pytest.raises(ValueError) as caught:
        Config(app="m:a", **settings)
    assert message in str(caught.value)


def test_insecure_bind_needs_a_certificate() -> None:
    with pytest.raises(ValueError, match="insecure_bind needs ssl_certfile"):
        Config(app="m:a", bind=[":8000"], insecure_bind=[":8080"])


def test_port_zero_binds_are_never_the_same_address() -> None:
    config = Config(app="m:a", bind=["127.0.0.1:0", "127.0.0.1:0"])
    assert len(config.listen_addresses) == 2


def test_port_zero_binds_a_listening_socket_on_a_free_port(closing: list[socket.socket]) -> None:
    sock = bind(TCPAddress("127.0.0.1", 0), backlog=8)
    closing.append(sock)
    port = sock.getsockname()[1]
    assert port != 0
    assert not sock.getblocking()
    assert describe(sock) == f"http://127.0.0.1:{port}"
    assert describe(sock, scheme="https") == f"https://127.0.0.1:{port}"
    socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_ipv6_loopback_is_bound_and_described_in_brackets(closing: list[socket.socket]) -> None:
    skip_without_ipv6_loopback()
    sock = bind(parse_address("[::1]:0"), backlog=8)
    closing.append(sock)
    port = sock.getsockname()[1]
    assert sock.family == socket.AF_INET6
    assert describe(sock) == f"http://[::1]:{port}"
    socket.create_connection(("::1", port), timeout=5).close()


def test_unix_socket_is_bound_with_its_mode_and_replaces_a_stale_one(
    tmp_path: Path, closing: list[socket.socket]
) -> None:
    path = tmp_path / "app.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # leaves the file behind, as a crashed server would
    sock = bind(parse_address(f"unix:{path}", uds_mode=0o600), backlog=8)
    closing.append(sock)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert describe(sock) == f"unix socket {path}"
    assert describe(sock, scheme="https") == f"unix socket {path} (https)"
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))


def test_unix_socket_does_not_replace_a_file_that_is_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("keep me")
    with pytest.raises(OSError):
        bind(UnixAddress(str(path)), backlog=8)
    assert path.read_text() == "keep me"


def test_an_inherited_socket_is_listened_on_as_it_is(closing: list[socket.socket]) -> None:
    parent = socket.socket()
    parent.bind(("127.0.0.1", 0))
    port = parent.getsockname()[1]
    sock = bind(InheritedSocket(os.dup(parent.fileno())), backlog=8)
    closing.extend([parent, sock])
    assert sock.getsockname()[1] == port
    socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_bind_all_closes_what_it_bound_when_a_later_address_fails(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    path = tmp_path / "first.sock"
    try:
        with pytest.raises(OSError):
            bind_all(
                [UnixAddress(str(path)), TCPAddress("127.0.0.1", taken.getsockname()[1])],
                backlog=8,
            )
        with socket.socket(socket.AF_UNIX) as client, pytest.raises(ConnectionRefusedError):
            client.connect(str(path))
    finally:
        taken.close()


def test_reserved_port_is_shared_by_reuse_port_listeners(closing: list[socket.socket]) -> None:
    reserved = reserve_port(TCPAddress("127.0.0.1", 0))
    closing.append(reserved)
    address = TCPAddress("127.0.0.1", reserved.getsockname()[1])
    first = bind(address, backlog=8, reuse_port=True)
    second = bind(address, backlog=8, reuse_port=True)
    closing.extend([first, second])
    assert first.getsockname() == second.getsockname() == reserved.getsockname()
    with pytest.raises(OSError):
        bind(address, backlog=8)  # without SO_REUSEPORT the port is taken


def test_socket_file_is_removed_only_while_it_is_the_one_created(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    sock = bind(UnixAddress(str(path)), backlog=8)
    created = UnixSocketFile.at(str(path))
    sock.close()
    other = tmp_path / "other"
    other.write_text("another instance's")  # a new inode while the socket's is still in use
    other.replace(path)
    created.remove_if_unchanged()
    assert path.exists()
    path.unlink()
    created.remove_if_unchanged()  # already gone: nothing to do


def test_bind_listening_keeps_which_sockets_are_insecure(closing: list[socket.socket]) -> None:
    listening = bind_listening(
        [
            ListenAddress(TCPAddress("127.0.0.1", 0)),
            ListenAddress(TCPAddress("127.0.0.1", 0), insecure=True),
        ],
        backlog=8,
    )
    closing.extend(item.sock for item in listening)
    assert [item.insecure for item in listening] == [False, True]
    assert listening[0].sock.getsockname() != listening[1].sock.getsockname()
