"""A small chat room in plain ASGI: one HTML page, and a WebSocket every open page joins.

Run it with ``hasten chat:app --app-dir examples`` and open http://127.0.0.1:8000 in two
browser tabs; what one tab sends appears in both.
"""

from __future__ import annotations

import json
from typing import Any

PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hasten chat</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
  #log { list-style: none; padding: 0; min-height: 10rem; border: 1px solid #ccc; }
  #log li { padding: .25rem .5rem; }
  #status { color: #666; }
</style>
</head>
<body>
<h1>hasten chat</h1>
<p id="status">connecting...</p>
<ul id="log"></ul>
<form id="form">
  <input id="name" placeholder="name" size="8" required>
  <input id="text" placeholder="message" autocomplete="off" required>
  <button>Send</button>
</form>
<script>
const scheme = location.protocol === "https:" ? "wss" : "ws";
const socket = new WebSocket(`${scheme}://${location.host}/ws`);
const log = document.getElementById("log");
const status = document.getElementById("status");
socket.onopen = () => { status.textContent = "connected"; };
socket.onclose = () => { status.textContent = "disconnected"; };
socket.onmessage = (event) => {
  const message = JSON.parse(event.data);
  const item = document.createElement("li");
  item.textContent = `${message.name}: ${message.text}`;
  log.appendChild(item);
};
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const text = document.getElementById("text");
  const name = document.getElementById("name").value;
  socket.send(JSON.stringify({ name, text: text.value }));
  text.value = "";
};
</script>
</body>
</html>
"""

# Longest name and message the room passes on, in characters.
MAX_NAME = 40
MAX_TEXT = 2000


class ChatRoom:
    """Everyone connected, each as the ``send`` of their WebSocket."""

    def __init__(self) -> None:
        self.members: set[Any] = set()

    async def broadcast(self, name: str, text: str) -> None:
        payload = json.dumps({"name": name[:MAX_NAME], "text": text[:MAX_TEXT]})
        for send in list(self.members):
            try:
                await send({"type": "websocket.send", "text": payload})
            except OSError:
                # That member left while the message went out; its own loop removes it.
                self.members.discard(send)


room = ChatRoom()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The chat page on ``/``, the room's WebSocket on ``/ws``, 404 for anything else."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "websocket" and scope["path"] == "/ws":
        await chat(receive, send)
    elif scope["type"] == "http" and scope["path"] == "/":
        await respond(send, 200, b"text/html; charset=utf-8", PAGE)
    elif scope["type"] == "http":
        await respond(send, 404, b"text/plain; charset=utf-8", b"Not Found\n")
    else:
        await send({"type": "websocket.close", "code": 1008})


async def chat(receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    room.members.add(send)
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                data = json.loads(message.get("text") or "")
                name, text = str(data["name"]), str(data["text"])
            except (ValueError, KeyError, TypeError):
                continue  # not a chat message; ignore it
            await room.broadcast(name, text)
    finally:
        room.members.discard(send)


async def respond(send: Any, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": body})
