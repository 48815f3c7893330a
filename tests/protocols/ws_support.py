"""WebSocket test helpers: ASGI apps, raw frames, and a client that reads them."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.harness import RawClient, RunningServer, run_client

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def upgrade_request(
    headers: dict[str, str] | None = None, *, method: str = "GET", version: str = "1.1"
) -> bytes:
    """The RFC 6455 §1.3 handshake request, with ``headers`` replacing or adding fields
    (a value of ``None`` removes one)."""
    fields: dict[str, str | None] = {
        "Host": "t",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    fields.update(headers or {})
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value is not None)
    return f"{method} /ws HTTP/{version}\r\n{lines}\r\n".encode("latin-1")


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """A client frame (RFC 6455 §5.2), masked unless told otherwise."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = bytes([first, mask_bit | length])
    elif length < 1 << 16:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return head + key + masked


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def read_frame(client: RawClient) -> tuple[bool, int, bytes]:
    """One server frame: (fin, opcode, payload)."""
    first, second = client._read_exact(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", client._read_exact(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", client._read_exact(8))
    return bool(first & 0x80), first & 0x0F, client._read_exact(length)


def read_close_code(client: RawClient) -> int:
    """Skip data frames up to the server's close frame and return its code."""
    while True:
        _, opcode, payload = read_frame(client)
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0] if payload else 1005
        if opcode == 0x9:
            continue


def open_raw(server: RunningServer, early: bytes = b"") -> RawClient:
    """A raw connection past a successful handshake."""
    client = server.connect()
    client.send(upgrade_request({"Sec-WebSocket-Extensions": None}) + early)
    response = client.read_response(head_request=True)
    assert response.status == 101, response
    assert response.header("sec-websocket-accept") == ACCEPT
    return client


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """Accepts, then sends every message back as it came: text as text, bytes as bytes."""
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", **{k: v for k, v in message.items() if k != "type"}})


class Recorder:
    """An app wrapper that records scopes, messages received and errors raised, thread-safely."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.scopes: list[Any] = []
        self.received: list[Any] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        self.scopes.append(scope)

        async def recording_receive() -> Any:
            message = await receive()
            with self.lock:
                self.received.append(message)
            return message

        try:
            await self.app(scope, recording_receive, send)
        except Exception as exc:
            self.errors.append(exc)
            raise

    def disconnects(self) -> list[Any]:
        with self.lock:
            return [m for m in self.received if m["type"] == "websocket.disconnect"]


def run(coro: Any) -> Any:
    return run_client(asyncio.wait_for(coro, 20))


def ws_url(server: RunningServer, path: str = "/ws") -> str:
    return f"ws://{server.host}:{server.port}{path}"


def basic_auth(user: str) -> str:
    return base64.b64encode(user.encode()).decode()
