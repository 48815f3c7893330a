"""A blocking HTTP/2 test client over a raw socket, on h2's client-side state machine, that
can also send raw frames (hyperframe/hpack) the state machine would refuse to build."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class H2Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    informational: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    reset_code: int | None = None
    ended: bool = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class H2Client:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        settings: dict[int, int] | None = None,
        timeout: float = 5.0,
        sock: socket.socket | None = None,
        validate: bool = True,
    ) -> None:
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        # validate=False lets the client send fields h2 would refuse to (malformed requests).
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
        )
        self.conn = h2.connection.H2Connection(config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.responses: dict[int, H2Response] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.all_events: list[Any] = []

    def start(self) -> H2Client:
        self.conn.initiate_connection()
        self.flush()
        return self

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        end_stream: bool = True,
        authority: str = "test",
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        pseudo = [(":method", method), (":path", path), (":scheme", "http")]
        pseudo.append((":authority", authority))
        self.conn.send_headers(
            stream_id, pseudo + (headers or []), end_stream=end_stream and not body
        )
        if body:
            self.send_body(stream_id, body, end_stream=end_stream)
        self.flush()
        return stream_id

    def send_body(self, stream_id: int, body: bytes, *, end_stream: bool = True) -> None:
        """Send ``body`` within the server's flow-control window, reading as needed."""
        while body:
            window = self.conn.local_flow_control_window(stream_id)
            size = min(window, self.conn.max_outbound_frame_size, len(body))
            if size <= 0:
                self.flush()
                self.receive_once()
                continue
            chunk, body = body[:size], body[size:]
            self.conn.send_data(stream_id, chunk, end_stream=end_stream and not body)
        self.flush()

    def receive_once(self, timeout: float | None = None) -> list[Any]:
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return []
        events = self.conn.receive_data(data)
        self.all_events.extend(events)
        for event in events:
            self._record(event)
        self.flush()
        return events

    def _record(self, event: Any) -> None:
        stream_id = getattr(event, "stream_id", None)
        response = self.responses.setdefault(stream_id, H2Response()) if stream_id else None
        if isinstance(event, h2.events.ResponseReceived):
            assert response is not None
            response.headers = list(event.headers)
            response.status = int(dict(response.headers)[b":status"])
        elif isinstance(event, h2.events.InformationalResponseReceived):
            assert response is not None
            response.informational.append(list(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            assert response is not None
            response.body += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            assert response is not None
            response.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            assert response is not None
            response.ended = True
        elif isinstance(event, h2.events.StreamReset):
            assert response is not None
            response.reset_code = event.error_code
            response.ended = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def wait_for(self, condition: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("condition not met")
            if self.closed:
                raise ConnectionError("connection closed before the condition was met")
            self.receive_once(timeout=remaining)

    def response(self, stream_id: int, timeout: float = 5.0) -> H2Response:
        self.wait_for(
            lambda: self.responses.get(stream_id, H2Response()).ended or self.goaway, timeout
        )
        return self.responses[stream_id]

    def wait_closed(self, timeout: float = 5.0) -> bytes:
        """Read until the server closes; the raw bytes read (not fed to the machine)."""
        deadline = time.monotonic() + timeout
        received = b""
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("server did not close the connection")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.closed = True
            received += data
        return received

    def goaway_code(self, timeout: float = 5.0) -> int:
        """The error code of the server's GOAWAY, reading until the server closes."""
        frames = parse_frames(self.wait_closed(timeout))
        goaways = [frame for frame in frames if type(frame).__name__ == "GoAwayFrame"]
        assert goaways, f"no GOAWAY before the close: {frames[-3:]}"
        return int(goaways[-1].error_code)


def parse_frames(data: bytes) -> list[Any]:
    """Split raw server bytes into hyperframe frames (bodies parsed, headers not decoded)."""
    from hyperframe.frame import Frame

    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        if len(data) < 9 + length:
            break
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def ensure_h2load() -> str:
    """The path of h2load, installing Debian's nghttp2-client first when it is missing."""
    if shutil.which("h2load") is None:
        # `make test` installs it before the workers start; this is for a bare pytest run,
        # and waits on dpkg's lock rather than fail when another install holds it.
        install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq"]
        install.append("nghttp2-client")
        if subprocess.run(install, check=False, capture_output=True, timeout=300).returncode:
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(install, check=False, capture_output=True, timeout=300)
    found = shutil.which("h2load")
    if found is None:
        raise RuntimeError("h2load (Debian package nghttp2-client) could not be installed")
    return found
