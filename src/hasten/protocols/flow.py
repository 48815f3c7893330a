"""Read and write backpressure between a transport and the app, shared by the protocols."""

from __future__ import annotations

import asyncio
from typing import Final

from hasten.asgi import ClientDisconnected

# Request body bytes buffered ahead of the app before the socket stops being read.
READ_HIGH_WATER: Final = 64 * 1024


class FlowControl:
    """Pauses reading while the app lags behind, and makes writers wait while the peer does.

    Reading is paused for any number of reasons at once (a full body buffer, requests
    queued behind a slow one); it resumes only when every reason is gone.
    """

    __slots__ = (
        "_drain_waiter",
        "closed",
        "read_pause_reasons",
        "transport",
        "write_paused",
        "write_stalled_since",
    )

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.write_paused = False
        # When the server's tick first found writing paused; 0.0 while it is not.
        self.write_stalled_since = 0.0
        self.closed = False
        self.read_pause_reasons = 0
        self._drain_waiter: asyncio.Future[None] | None = None

    def pause_reading(self, reason: int) -> None:
        """Stop reading the socket for ``reason`` (a bit flag)."""
        if not self.read_pause_reasons and not self.closed:
            self.transport.pause_reading()
        self.read_pause_reasons |= reason

    def resume_reading(self, reason: int) -> None:
        """Drop ``reason``; reading resumes when no reason is left."""
        if self.read_pause_reasons & reason:
            self.read_pause_reasons &= ~reason
            if not self.read_pause_reasons and not self.closed:
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.write_stalled_since = 0.0
        self._wake_writer()

    def write_stalled_for(self, timeout: float, now: float) -> bool:
        """From the server's tick: whether the peer has taken none of the output for
        ``timeout`` seconds (``timeout_response_write``) while writers wait on it.

        Backpressure keeps the buffered output bounded; this frees the connection and the
        app's task from a peer that never reads (slow read, zero window). The clock starts
        at the first tick that finds writing paused and restarts whenever the peer reads.
        """
        if not self.write_paused:
            return False
        if not self.write_stalled_since:
            self.write_stalled_since = now
            return False
        return now - self.write_stalled_since >= timeout

    def connection_lost(self) -> None:
        self.closed = True
        self._wake_writer()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its low-water mark."""
        if self.closed:
            raise ClientDisconnected("the client disconnected")
        if not self.write_paused:
            return
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)
        if self.closed:
            raise ClientDisconnected("the client disconnected")

    def _wake_writer(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)


PAUSED_FOR_BODY: Final = 1
PAUSED_FOR_PIPELINE: Final = 2
PAUSED_FOR_WRITES: Final = 4


class ReadingFollowsWriting:
    """For protocols whose peer can make the server write without end (HTTP/2 control
    frames, WebSocket pings): while the peer doesn't read, the server stops reading it too,
    which bounds the replies queued for it."""

    __slots__ = ()
    flow: FlowControl

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        self.flow.pause_reading(PAUSED_FOR_WRITES)

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        self.flow.resume_reading(PAUSED_FOR_WRITES)
