"""A real browser's whole page over one HTTP/2 connection: headless Chromium loads a page over
https with ALPN h2, then fetches (GETs at once, a POST with a body, a streamed upload, a
response streamed in parts) and opens WebSockets (RFC 8441); the app records the scope of
each, and every one must be HTTP/2 from the same client port. A fetch aborted mid-body
resets its stream alone: the app's sending stops, and the next fetch shares the connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RunningServer, run_server
from tests.protocols.http1_apps import read_body
from tests.tls_support import Certificate

STREAMED_PARTS = [f"part {index};".encode() for index in range(8)]
GET_COUNT = 150
POSTED_SIZE = 200_000
UPLOADED_PARTS = 100
# Far more than Chromium's windows let through unread: only a reset stream ends it early.
ENDLESS_SIZE = 1 << 30

PAGE = b"""<!doctype html>
<title>one connection</title>
<script>
  async function exchangeOverOneConnection([getCount, postedSize, uploadedParts]) {
    const answers = {};
    // More at once than SETTINGS_MAX_CONCURRENT_STREAMS (100): Chromium queues the rest.
    const numbers = Array.from({ length: getCount }, (_, n) => n);
    answers.gets = await Promise.all(
      numbers.map((n) => fetch("/get?" + n).then((response) => response.text()))
    );
    const posted = await fetch("/echo", { method: "POST", body: "p".repeat(postedSize) });
    answers.post = await posted.text();
    // A streamed request body: Chromium sends one only over HTTP/2 (or HTTP/3).
    const encoder = new TextEncoder();
    const parts = new ReadableStream({
      start(controller) {
        const part = encoder.encode("u".repeat(1000));
        for (let n = 0; n < uploadedParts; n++) controller.enqueue(part);
        controller.close();
      },
    });
    const uploaded = await fetch("/echo?streamed", { method: "POST", body: parts, duplex: "half" });
    answers.upload = await uploaded.text();
    const streamed = await fetch("/stream");
    const reader = streamed.body.getReader();
    const decoder = new TextDecoder();
    answers.streamed = "";
    for (let part = await reader.read(); !part.done; part = await reader.read()) {
      answers.streamed += decoder.decode(part.value, { stream: true });
    }
    answers.websocket = await new Promise((resolve, reject) => {
      const socket = new WebSocket("wss://" + location.host + "/ws");
      socket.onopen = () => socket.send("which http?");
      socket.onmessage = (event) => { resolve(event.data); socket.close(1000); };
      socket.onerror = () => reject(new Error("websocket failed"));
    });
    // Two WebSockets at once, echoing messages larger than the server's h2 stream window.
    answers.echoes = await Promise.all([100000, 3 << 20].map(echoOverWebSocket));
    return answers;
  }

  function echoOverWebSocket(size) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket("wss://" + location.host + "/ws?echo");
      socket.binaryType = "arraybuffer";
      const sent = new Uint8Array(size).map((_, index) => index % 251);
      socket.onopen = () => socket.send(sent);
      socket.onmessage = (event) => {
        const echoed = new Uint8Array(event.data);
        resolve(echoed.length === size && echoed.every((byte, index) => byte === sent[index]));
        socket.close(1000);
      };
      socket.onerror = () => reject(new Error("websocket failed"));
    });
  }

  async function abortAResponseThenFetch() {
    const controller = new AbortController();
    const endless = await fetch("/endless", { signal: controller.signal });
    await endless.body.getReader().read();
    controller.abort();
    return await fetch("/after-abort").then((response) => response.text());
  }
</script>
"""


@dataclass
class ScopeLog:
    """The page's app, which records (scope type, http_version, client port, path) of each
    request and WebSocket.

    ``/stream`` answers ``STREAMED_PARTS`` one message each, ``/endless`` sends until its
    stream is reset, other paths answer with the method, query and body size. A WebSocket
    echoes each message with ``?echo``, and otherwise answers with its version and scheme.
    """

    entries: list[tuple[str, str, int, str]] = field(default_factory=list)
    endless_stopped: threading.Event = field(default_factory=threading.Event)
    endless_sent: int = 0

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        self.entries.append(
            (scope["type"], scope["http_version"], scope["client"][1], scope["path"])
        )
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            while (message := await receive())["type"] == "websocket.receive":
                if scope["query_string"] == b"echo":
                    await send({"type": "websocket.send", "bytes": message["bytes"]})
                else:
                    answer = f"{scope['http_version']} {scope['scheme']}"
                    await send({"type": "websocket.send", "text": answer})
            return
        body, _ = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/":
            await send({"type": "http.response.body", "body": PAGE})
        elif scope["path"] == "/stream":
            for part in STREAMED_PARTS:
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif scope["path"] == "/endless":
            await self.send_endless(send)
        else:
            answer = f"{scope['method']} {scope['query_string'].decode()} {len(body)}"
            await send({"type": "http.response.body", "body": answer.encode()})

    async def send_endless(self, send: Any) -> None:
        part = bytes(65536)
        try:
            while self.endless_sent < ENDLESS_SIZE:
                await send({"type": "http.response.body", "body": part, "more_body": True})
                self.endless_sent += len(part)
        finally:
            self.endless_stopped.set()


@pytest.fixture
def scope_log() -> ScopeLog:
    return ScopeLog()


@pytest.fixture
def https_server(tmp_path: Path, scope_log: ScopeLog) -> Iterator[RunningServer]:
    certificate = Certificate(tmp_path)
    with run_server(scope_log.app, ssl_certfile=str(certificate.server_pem)) as server:
        yield server


@contextmanager
def page_of(chromium: Any, server: RunningServer) -> Iterator[Any]:
    """The server's page, open in a fresh browser context for the duration."""
    # The test certificate's authority is not one Chromium trusts.
    context = chromium.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(f"https://127.0.0.1:{server.port}/")
        yield page
    finally:
        context.close()


def test_chromium_loads_fetches_and_opens_websockets_on_one_http2_connection(
    chromium: Any, https_server: RunningServer, scope_log: ScopeLog
) -> None:
    with page_of(chromium, https_server) as page:
        sizes = [GET_COUNT, POSTED_SIZE, UPLOADED_PARTS]
        answers = page.evaluate("exchangeOverOneConnection", sizes)
    assert answers["gets"] == [f"GET {n} 0" for n in range(GET_COUNT)]
    assert answers["post"] == f"POST  {POSTED_SIZE}"
    assert answers["upload"] == f"POST streamed {UPLOADED_PARTS * 1000}"
    assert answers["streamed"] == b"".join(STREAMED_PARTS).decode()
    assert answers["websocket"] == "2 wss"
    assert answers["echoes"] == [True, True]
    paths = {path for _, _, _, path in scope_log.entries}
    assert {"/", "/get", "/echo", "/stream", "/ws"} <= paths
    assert {version for _, version, _, _ in scope_log.entries} == {"2"}
    assert len({port for _, _, port, _ in scope_log.entries}) == 1, scope_log.entries


def test_chromium_aborting_a_fetch_resets_only_its_stream(
    chromium: Any, https_server: RunningServer, scope_log: ScopeLog
) -> None:
    with page_of(chromium, https_server) as page:
        answer = page.evaluate("abortAResponseThenFetch")
        # While the page and its connection are still open: only the reset can stop it.
        assert scope_log.endless_stopped.wait(5)
    assert answer == "GET  0"
    assert scope_log.endless_sent < ENDLESS_SIZE
    paths = [path for _, _, _, path in scope_log.entries]
    assert paths.index("/endless") < paths.index("/after-abort")
    assert {version for _, version, _, _ in scope_log.entries} == {"2"}
    assert len({port for _, _, port, _ in scope_log.entries}) == 1, scope_log.entries
