"""A real browser's WebSocket over HTTP/2: headless Chromium, given a page over https with
ALPN h2 by a hasten that advertises extended CONNECT, opens its WebSocket on that same
connection (RFC 8441) rather than a new HTTP/1.1 one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.harness import RunningServer, run_server

PAGE = b"""<!doctype html>
<pre id="log"></pre>
<script>
  const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
  const socket = new WebSocket("wss://" + location.host + "/ws");
  socket.onopen = () => socket.send("which http?");
  socket.onmessage = (event) => { log("answer: " + event.data); socket.close(1000); };
  socket.onclose = (event) => log("closed: " + event.code + " clean: " + event.wasClean);
</script>
"""


async def page_and_websocket(scope: Any, receive: Any, send: Any) -> None:
    """The page over http; over the WebSocket, each message is answered with the scope's
    http_version and scheme."""
    if scope["type"] == "http":
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PAGE})
        return
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while (await receive())["type"] == "websocket.receive":
        answer = f"{scope['http_version']} {scope['scheme']}"
        await send({"type": "websocket.send", "text": answer})


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[RunningServer]:
    server_pem = tmp_path / "server.pem"
    certificate = trustme.CA().issue_cert("127.0.0.1", "localhost")
    certificate.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    with run_server(page_and_websocket, ssl_certfile=str(server_pem)) as server:
        yield server


def test_chromium_opens_its_websocket_over_http2(
    chromium: Any, https_server: RunningServer
) -> None:
    # The test certificate's authority is not one Chromium trusts.
    context = chromium.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(f"https://127.0.0.1:{https_server.port}/")
        page.wait_for_selector("#log:has-text('closed:')", timeout=10_000)
        log = page.inner_text("#log")
    finally:
        context.close()
    assert "answer: 2 wss" in log
    assert "closed: 1000 clean: true" in log
