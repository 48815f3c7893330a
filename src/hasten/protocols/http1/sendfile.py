"""Zero-copy file bodies on a plain TCP (or Unix) connection: ``os.sendfile`` from the file
straight into the socket.

Neither uvloop nor asyncio's transports send files themselves (uvloop's ``loop.sendfile``
is not implemented, asyncio's refuses a socket a transport owns), so this module does:
it waits until the transport has written everything it holds, then calls ``os.sendfile``
on the (non-blocking) socket until the range is sent, waiting for the socket to become
writable in between. The wait goes through the connection's ``FlowControl``: writing
counts as paused while the socket is full, so the server's tick enforces
``timeout_response_write`` on a client that stops reading, and a closed connection ends
the wait.
"""

from __future__ import annotations

import asyncio
import os

from hasten.asgi import ClientDisconnected
from hasten.protocols.files import FileChanged
from hasten.protocols.flow import FlowControl


def sendfile_socket(transport: asyncio.Transport) -> int | None:
    """The descriptor of the transport's socket, if file bytes can be sent into it directly:
    not when TLS must encrypt them, nor where the platform has no ``os.sendfile``."""
    if transport.get_extra_info("ssl_object") is not None or not hasattr(os, "sendfile"):
        return None
    sock = transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


async def sendfile(
    transport: asyncio.Transport,
    flow: FlowControl,
    socket_fd: int,
    fd: int,
    offset: int,
    count: int,
    write_buffer_limit: int,
) -> None:
    """Send ``count`` bytes of ``fd`` from ``offset`` into ``socket_fd``, the transport's
    socket, after what the transport holds. Raises ClientDisconnected when the connection
    ends first, FileChanged when the file has fewer bytes than that, OSError when it
    cannot be read."""
    await _written_out(transport, flow, write_buffer_limit)
    loop = asyncio.get_running_loop()
    # A descriptor of our own for the socket: if the transport closes its descriptor in the
    # meantime (the write timeout, a reset), the number may be reused by the next accepted
    # connection, which must never receive these bytes. The duplicate also lets the loop
    # watch for writability, which it refuses on a descriptor a transport owns.
    own_fd = os.dup(socket_fd)
    watching = False
    end = offset + count
    try:
        while offset < end:
            if flow.closed:
                raise ClientDisconnected("the client disconnected")
            try:
                sent = os.sendfile(own_fd, fd, offset, end - offset)
            except BlockingIOError:
                if not watching:
                    loop.add_writer(own_fd, flow.resume_writing)
                    watching = True
                flow.pause_writing()
                await flow.drain()
                continue
            except ConnectionError as exc:
                raise ClientDisconnected("the client disconnected") from exc
            if not sent:
                raise FileChanged(f"file shrank: {offset} bytes readable, not {end}")
            offset += sent
    finally:
        if watching:
            loop.remove_writer(own_fd)
        os.close(own_fd)


async def _written_out(transport: asyncio.Transport, flow: FlowControl, limit: int) -> None:
    """Wait until the transport's buffer is empty, so that the file's bytes follow it."""
    if not transport.get_write_buffer_size():
        return
    # With both marks at zero, the transport pauses the protocol now and resumes it once
    # its buffer is empty: the wait is the connection's usual drain, stall clock included.
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await flow.drain()
    finally:
        if not flow.closed:
            transport.set_write_buffer_limits(high=limit)
