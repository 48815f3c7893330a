"""The protocols an ASGI http request can arrive by, behind one small client interface.

Each carrier serves an app on a real server on port 0 and talks to it with a real client:
raw HTTP/1.1 bytes over a socket, or h2's client state machine over cleartext (prior
knowledge) or TLS (ALPN ``h2``, with trustme certificates). A test written against
``Carrier`` runs over every one of them.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.events
import trustme

from tests.harness import RawClient, RunningServer, run_server
from tests.protocols.h2client import H2Client

LOCALHOST = "127.0.0.1"


@dataclass
class Reply:
    """What the client got: ``status`` 0 when no response head came, ``complete`` when the
    response ended as a whole message (framing satisfied, no reset, no early close)."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class Exchange:
    """One request in flight: its body may be sent in parts, and the client may leave."""

    def send_body(self, body: bytes, *, end: bool = True) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        """The client goes away: it closes its connection, or resets its stream."""
        raise NotImplementedError

    def reply(self, timeout: float = 5.0) -> Reply:
        raise NotImplementedError


class Carrier:
    """A protocol, a server speaking it and a client for it."""

    name = ""
    server: RunningServer

    @contextlib.contextmanager
    def serve(self, app: Any, **settings: Any) -> Iterator[Carrier]:
        with run_server(app, **self.settings(), **settings) as server:
            self.server = server
            yield self

    def settings(self) -> dict[str, Any]:
        return {}

    def open(
        self,
        method: str = "GET",
        path: str = "/",
        headers: list[tuple[str, str]] | None = None,
        *,
        body_follows: bool = False,
    ) -> Exchange:
        """Send a request head; with ``body_follows`` the body comes later (send_body)."""
        raise NotImplementedError

    def request(
        self, method: str = "GET", path: str = "/", body: bytes = b"", timeout: float = 5.0
    ) -> Reply:
        """One whole request and its response."""
        headers = [("content-length", str(len(body)))] if body else []
        exchange = self.open(method, path, headers, body_follows=bool(body))
        if body:
            exchange.send_body(body)
        return exchange.reply(timeout)


class HTTP1(Carrier):
    name = "http1"

    def open(
        self,
        method: str = "GET",
        path: str = "/",
        headers: list[tuple[str, str]] | None = None,
        *,
        body_follows: bool = False,
    ) -> Exchange:
        client = self.server.connect()
        lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers or []]
        client.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return HTTP1Exchange(client)


class HTTP1Exchange(Exchange):
    def __init__(self, client: RawClient) -> None:
        self.client = client

    def send_body(self, body: bytes, *, end: bool = True) -> None:
        self.client.send(body)

    def disconnect(self) -> None:
        self.client.close()

    def reply(self, timeout: float = 5.0) -> Reply:
        """The response, read as the framing it declares says; an early close leaves it
        incomplete."""
        client = self.client
        client.sock.settimeout(timeout)
        with client:
            data = client.read_all(timeout)
        head, separator, body = data.partition(b"\r\n\r\n")
        if not separator:
            return Reply()
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = [(n.strip().lower(), v.strip()) for n, _, v in (x.partition(":") for x in lines)]
        reply = Reply(int(status_line.split(" ")[1]), headers)
        length = reply.header("content-length")
        if reply.header("transfer-encoding") == "chunked":
            reply.body, reply.complete = dechunk(body)
        elif length is not None:
            reply.body = body[: int(length)]
            reply.complete = len(body) == int(length)
        else:
            reply.body, reply.complete = body, reply.status in (204, 304)
        return reply


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """A chunked body, and whether its last chunk arrived."""
    body = b""
    while True:
        size_line, separator, data = data.partition(b"\r\n")
        if not separator:
            return body, False
        size = int(size_line, 16)
        if size == 0:
            return body, data.startswith(b"\r\n")
        if len(data) < size + 2:
            return body + data[:size], False
        body, data = body + data[:size], data[size + 2 :]


class H2C(Carrier):
    """HTTP/2 over cleartext with prior knowledge (RFC 9113 §3.3)."""

    name = "h2c"

    def connect(self) -> socket.socket:
        return socket.create_connection((self.server.host, self.server.port), timeout=5)

    def open(
        self,
        method: str = "GET",
        path: str = "/",
        headers: list[tuple[str, str]] | None = None,
        *,
        body_follows: bool = False,
    ) -> Exchange:
        client = H2Client(self.server.host, self.server.port, sock=self.connect()).start()
        stream_id = client.request(
            path, method=method, headers=headers, end_stream=not body_follows
        )
        return H2Exchange(client, stream_id)


class H2TLS(H2C):
    """HTTP/2 over TLS, chosen by ALPN (RFC 7301), with certificates made by trustme."""

    name = "h2-tls"

    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        self.certificate = directory / "server.pem"
        ca.issue_cert(LOCALHOST).private_key_and_cert_chain_pem.write_to_path(str(self.certificate))
        self.context = ssl.create_default_context()
        ca.configure_trust(self.context)
        self.context.set_alpn_protocols(["h2"])

    def settings(self) -> dict[str, Any]:
        return {"ssl_certfile": str(self.certificate)}

    def connect(self) -> socket.socket:
        sock = self.context.wrap_socket(super().connect(), server_hostname=LOCALHOST)
        assert sock.selected_alpn_protocol() == "h2"
        return sock


class H2Exchange(Exchange):
    def __init__(self, client: H2Client, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id

    def send_body(self, body: bytes, *, end: bool = True) -> None:
        self.client.send_body(self.stream_id, body, end_stream=end)

    def disconnect(self) -> None:
        self.client.close()

    def reply(self, timeout: float = 5.0) -> Reply:
        with self.client:
            try:
                response = self.client.response(self.stream_id, timeout)
            except ConnectionError:
                response = self.client.responses.get(self.stream_id)
            if response is None:
                return Reply()
            headers = [(n.decode(), v.decode()) for n, v in response.headers]
            return Reply(
                response.status, headers, response.body, stream_ended(self.client, self.stream_id)
            )


def stream_ended(client: H2Client, stream_id: int) -> bool:
    """Whether the server ended the stream with END_STREAM: its response is whole. (A reset
    may follow, RFC 9113 §8.1: the server needs no more of the request.)"""
    return any(
        isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id
        for event in client.all_events
    )


def carrier_named(name: str, directory: Path) -> Carrier:
    if name == "http1":
        return HTTP1()
    if name == "h2c":
        return H2C()
    return H2TLS(directory)


CARRIERS = ("http1", "h2c", "h2-tls")
