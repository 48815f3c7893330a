"""``Listener``: accept a listening socket's connections and give them to the event loop.

Why not ``loop.create_server``: uvloop's servers accept one connection per loop iteration
(libuv 1.45 and later, libuv#3696). On a loaded server an iteration lasts as long as it
takes to serve every ready connection, tens of milliseconds with a thousand of them, so a
burst of new clients waited seconds in the accept queue: with wrk -c1000 against a server
that was already busy, some requests took 2 s while the rest took 50 ms. A Listener
accepts the connections waiting, a batch at a time, each time the socket is readable, on
either loop, as asyncio's own servers do.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from hasten.logs import error_logger

if TYPE_CHECKING:
    from hasten.proxy_protocol_gate import ProxyProtocolGate

# Connections accepted per wake-up, at most. Each one's first request is read in the same
# loop turns, so a batch is a burst of requests in flight at once: uncapped, a flood of 2048
# waiting connections raised the server's memory high-water mark by 1.2 KB per connection
# (5000 idle connections opened in a row), while 128 accept a wrk -c1000 burst within a
# few loop iterations (max latency 230 ms against 2 s with uvloop's one per iteration).
ACCEPTS_PER_WAKEUP = 128
# Out of file descriptors or socket memory: accepting pauses this long before retrying,
# and the clients wait in the accept queue meanwhile (asyncio's servers do the same).
ACCEPT_RETRY_DELAY = 1.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener:
    """Serves one listening socket until ``close()``: each accepted connection gets a
    protocol from ``protocol_factory``, over TLS when ``ssl_context`` is given, once its
    PROXY protocol header is read when ``proxy_protocol`` is given."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        *,
        ssl_context: ssl.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
        proxy_protocol: ProxyProtocolGate | None = None,
    ) -> None:
        self.loop = loop
        self.sockets = (sock,)
        self.protocol_factory = protocol_factory
        self.ssl_context = ssl_context
        self.ssl_handshake_timeout = ssl_handshake_timeout if ssl_context else None
        self.proxy_protocol = proxy_protocol
        self.closed = False
        self._fd = sock.fileno()
        self._retry: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start accepting connections."""
        self._retry = None
        if not self.closed:
            self.sockets[0].setblocking(False)
            self.loop.add_reader(self._fd, self._accept_waiting)

    def close(self) -> None:
        """Stop accepting and close the socket; connections already accepted stay open."""
        if self.closed:
            return
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
        self.loop.remove_reader(self._fd)
        self.sockets[0].close()
        if self.proxy_protocol is not None:
            self.proxy_protocol.close()

    def _accept_waiting(self) -> None:
        sock = self.sockets[0]
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                conn, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    # The client gave up while it waited in the queue, or its connection
                    # failed (accept(2) reports such errors as its own): on to the next.
                    error_logger.debug("Connection failed before it was accepted: %s", exc)
                    continue
                error_logger.error(
                    "Could not accept a connection (%s); retrying in %.0f s",
                    exc,
                    ACCEPT_RETRY_DELAY,
                )
                self.loop.remove_reader(self._fd)
                self._retry = self.loop.call_later(ACCEPT_RETRY_DELAY, self.start)
                return
            if self.proxy_protocol is None:
                self._connect(conn, self.protocol_factory)
            else:
                # The PROXY header comes before anything else, a TLS handshake included.
                self.proxy_protocol.admit(conn, self.protocol_factory, self._connect)

    def _connect(
        self, conn: socket.socket, protocol_factory: Callable[[], asyncio.Protocol]
    ) -> None:
        connecting = self.loop.connect_accepted_socket(
            protocol_factory,
            conn,
            ssl=self.ssl_context,
            ssl_handshake_timeout=self.ssl_handshake_timeout,
        )
        _advance(connecting)


def _advance(connecting: Coroutine[Any, Any, object], _previous: object = None) -> None:
    """Run ``connect_accepted_socket()`` without a Task: a task would make the transport
    one loop iteration later, and cost a Task per connection. Its first step runs at once;
    each later one when the future it waits for (connection_made, a TLS handshake) is done.
    """
    try:
        waiting: asyncio.Future[Any] = connecting.send(None)
    except StopIteration:
        return
    except OSError as exc:  # the loop closed the transport, e.g. a failed TLS handshake
        error_logger.debug("Connection lost while it was set up: %r", exc)
        return
    waiting.add_done_callback(functools.partial(_advance, connecting))
