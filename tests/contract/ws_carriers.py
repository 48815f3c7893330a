"""The two carriers of an ASGI websocket, behind one small client interface: an HTTP/1.1
connection upgraded by the RFC 6455 handshake, and an HTTP/2 stream opened by an extended
CONNECT (RFC 8441). Frames are built and read by websockets' sans-I/O client side either way.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from tests.contract.carriers import Reply, dechunk, stream_ended
from tests.harness import RawClient, RunningServer, run_server
from tests.protocols.test_websocket_h2 import H2WebSocket, LenientH2Client, open_stream
from tests.protocols.ws_support import upgrade_request


class Session:
    """One WebSocket, or the HTTP answer its handshake got instead (``answer``)."""

    answer: Reply

    def send_text(self, text: str) -> None:
        raise NotImplementedError

    def send_close(self, code: int, reason: str = "") -> None:
        raise NotImplementedError

    def receive(self) -> Frame:
        """The next frame from the server."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """Go away without a closing handshake."""
        raise NotImplementedError

    def receive_text(self) -> str:
        while True:
            received = self.receive()
            if received.opcode is Opcode.TEXT:
                return received.data.decode()

    def close_received(self) -> tuple[int, str]:
        """Frames up to the server's close frame: its code and reason."""
        while True:
            received = self.receive()
            if received.opcode is Opcode.CLOSE:
                code = int.from_bytes(received.data[:2], "big") if received.data else 1005
                return code, received.data[2:].decode()


class WebSocketCarrier:
    name = ""
    server: RunningServer

    @contextlib.contextmanager
    def serve(self, app: Any) -> Iterator[WebSocketCarrier]:
        """Serve ``app``; the sessions opened meanwhile are dropped before the server stops."""
        self.sessions: list[Session] = []
        with run_server(app, ws="auto") as server:
            self.server = server
            try:
                yield self
            finally:
                for session in self.sessions:
                    session.disconnect()

    def open(self) -> Session:
        """Send the handshake and read its answer."""
        session = self.handshake()
        self.sessions.append(session)
        return session

    def handshake(self) -> Session:
        raise NotImplementedError


class UpgradedConnection(WebSocketCarrier):
    name = "http1-upgrade"

    def handshake(self) -> Session:
        client = self.server.connect()
        client.send(upgrade_request({"Sec-WebSocket-Extensions": None}))
        return H1Session(client)


class H1Session(Session):
    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.frames = ClientProtocol(parse_uri("ws://test/ws"), state=OPEN)
        self.pending: list[Frame] = []
        head = client.read_response(head_request=True)
        headers = [(name.lower(), value) for name, value in head.headers]
        self.answer = Reply(head.status, headers)
        if head.status != 101:
            client.buffer = head.raw_head + b"\r\n\r\n" + client.buffer
            response = client.read_all()
            body = response.partition(b"\r\n\r\n")[2]
            length = self.answer.header("content-length")
            complete = length is None or len(body) >= int(length)
            if self.answer.header("transfer-encoding") == "chunked":
                body, complete = dechunk(body)
            self.answer.body, self.answer.complete = body, complete
        elif client.buffer:
            self.frames.receive_data(client.buffer)
            client.buffer = b""

    def flush(self) -> None:
        for data in self.frames.data_to_send():
            if data:
                self.client.send(data)
            else:
                self.client.sock.shutdown(socket.SHUT_WR)

    def send_text(self, text: str) -> None:
        self.frames.send_text(text.encode())
        self.flush()

    def send_close(self, code: int, reason: str = "") -> None:
        self.frames.send_close(code, reason)
        self.flush()

    def receive(self) -> Frame:
        while not self.pending:
            self.pending.extend(self.frames.events_received())  # type: ignore[arg-type]
            if self.pending:
                break
            data = self.client.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.frames.receive_data(data)
            self.flush()
        return self.pending.pop(0)

    def disconnect(self) -> None:
        self.client.close()


class ExtendedConnect(WebSocketCarrier):
    name = "h2-extended-connect"

    def handshake(self) -> Session:
        client = LenientH2Client(self.server.host, self.server.port).start()
        return H2Session(H2WebSocket(client, open_stream(client)))


class H2Session(Session):
    def __init__(self, websocket: H2WebSocket) -> None:
        self.websocket = websocket
        response = websocket.wait_response()
        headers = [(name.decode(), value.decode()) for name, value in response.headers]
        self.answer = Reply(response.status, headers)
        if response.status != 200:
            response = websocket.client.response(websocket.stream_id)
            self.answer.body = response.body
            self.answer.complete = stream_ended(websocket.client, websocket.stream_id)

    def send_text(self, text: str) -> None:
        self.websocket.send_text(text)

    def send_close(self, code: int, reason: str = "") -> None:
        self.websocket.send_close(code, reason)

    def receive(self) -> Frame:
        return self.websocket.receive()

    def disconnect(self) -> None:
        self.websocket.client.close()


WEBSOCKET_CARRIERS = {"http1-upgrade": UpgradedConnection, "h2-extended-connect": ExtendedConnect}
