"""A slowloris client, run as its own process so its work never competes with the client
whose latency a test measures.

    python slowloris.py HOST PORT CONNECTIONS INTERVAL DURATION

Opens CONNECTIONS connections, starts a request head on each and then sends one more header
byte on each every INTERVAL seconds, never finishing. Prints ``ready`` once every
connection is open, then, when every connection has been answered or closed (or DURATION
has passed), one JSON line: the statuses received and the connections still open.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import sys
import time
from collections import Counter


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    count, interval, duration = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    selector = selectors.DefaultSelector()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, bytearray())
        sockets.append(sock)
    print("ready", flush=True)
    statuses: Counter[str] = Counter()
    open_sockets = set(sockets)
    deadline = time.monotonic() + duration
    next_trickle = time.monotonic() + interval
    while open_sockets and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, next_trickle - time.monotonic())):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                chunk = sock.recv(65536)
            except ConnectionError:
                chunk = b""
            key.data.extend(chunk)
            if not chunk:
                head = bytes(key.data)
                statuses[head[9:12].decode("latin-1") if head else "closed"] += 1
                selector.unregister(sock)
                sock.close()
                open_sockets.discard(sock)
        if time.monotonic() >= next_trickle:
            next_trickle += interval
            for sock in list(open_sockets):
                with contextlib.suppress(BlockingIOError, ConnectionError):
                    sock.send(b"a")
    print(json.dumps({"statuses": statuses, "still_open": len(open_sockets)}), flush=True)
    for sock in open_sockets:
        sock.close()


if __name__ == "__main__":
    main()
