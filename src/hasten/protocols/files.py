"""Files as response bodies: the ASGI ``http.response.pathsend`` and
``http.response.zerocopysend`` messages (asgiref's extensions) checked and turned into a
byte range of an open file, which a protocol's ``send_file`` sends.

Everything that can be found wrong with such a message is found here, before any of its
bytes are sent, so that the app's error can still become a 500: a relative path, a file
that cannot be opened or is not a regular file, a range past the file's end.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Final

PATHSEND_EXTENSION: Final = "http.response.pathsend"
ZEROCOPYSEND_EXTENSION: Final = "http.response.zerocopysend"
# Where a file's bytes are read and sent as body chunks (TLS, HTTP/2): the size of a read.
# Memory per response stays about this, plus the connection's write buffer.
FILE_CHUNK_SIZE: Final = 64 * 1024
# O_NONBLOCK: opening a FIFO would otherwise wait for a writer (it is then refused as not
# a regular file).
_OPEN_FLAGS: Final = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


class FileChanged(OSError):
    """The file being sent gave fewer bytes than it had when the response started."""


class FileRange:
    """``count`` bytes of the open file ``fd`` from ``offset``, as one body message asked.

    ``owned``: the server opened it (pathsend) and closes it. ``moves_position``: the
    message gave no offset, so the file's position advances past what is sent, as
    ``os.sendfile`` without an offset does.
    """

    __slots__ = ("count", "fd", "moves_position", "offset", "owned")

    def __init__(self, fd: int, offset: int, count: int, *, owned: bool, moves_position: bool):
        self.fd = fd
        self.offset = offset
        self.count = count
        self.owned = owned
        self.moves_position = moves_position

    def sent(self) -> None:
        """The range has been sent: move the file's position past it, if it moves."""
        if self.moves_position:
            os.lseek(self.fd, self.offset + self.count, os.SEEK_SET)

    def close(self) -> None:
        """Close the file if the server opened it."""
        if self.owned:
            os.close(self.fd)


def pathsend_range(fields: dict[str, Any]) -> FileRange:
    """The whole file an ``http.response.pathsend`` names, opened. Raises RuntimeError for a
    message that breaks the extension's rules, OSError when the file cannot be opened."""
    path = fields.get("path")
    if not isinstance(path, str):
        raise RuntimeError(f"'http.response.pathsend' needs a str path, got {path!r}.")
    # The extension names an absolute path, but Starlette's FileResponse passes on what the
    # app gave it: a relative one is the file the app itself found, from the working directory.
    fd = os.open(path, _OPEN_FLAGS)
    try:
        size = _regular_file_size(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return FileRange(fd, 0, size, owned=True, moves_position=False)


def zerocopysend_range(fields: dict[str, Any]) -> FileRange:
    """The range an ``http.response.zerocopysend`` asks for: its ``file`` (an object with
    ``fileno()``, or a descriptor), from ``offset`` (default: the file's position) for
    ``count`` bytes (default: to its end). Raises RuntimeError when the message is wrong."""
    file = fields.get("file")
    fd = file if type(file) is int else _fileno(file)
    offset = fields.get("offset")
    count = fields.get("count")
    for name, value in (("offset", offset), ("count", count)):
        if value is not None and (type(value) is not int or value < 0):
            raise RuntimeError(
                f"'http.response.zerocopysend' {name} must be an int >= 0, got {value!r}."
            )
    try:
        size = _regular_file_size(fd, file)
        start = os.lseek(fd, 0, os.SEEK_CUR) if offset is None else offset
    except OSError as exc:
        raise RuntimeError(f"'http.response.zerocopysend' cannot read {file!r}: {exc}") from exc
    available = max(size - start, 0)
    if count is None:
        count = available
    elif count > available:
        raise RuntimeError(
            f"'http.response.zerocopysend' asks for {count} bytes from offset {start}, "
            f"but the file has {size}."
        )
    return FileRange(fd, start, count, owned=False, moves_position=offset is None)


def _fileno(file: object) -> int:
    try:
        fd = file.fileno()  # type: ignore[attr-defined]
    except Exception as exc:  # AttributeError, io.UnsupportedOperation (BytesIO)...
        raise RuntimeError(
            f"'http.response.zerocopysend' needs a file with a descriptor, got {file!r}."
        ) from exc
    if type(fd) is not int:
        raise RuntimeError(f"'http.response.zerocopysend' got a file whose fileno() is {fd!r}.")
    return fd


def _regular_file_size(fd: int, name: object) -> int:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        # os.sendfile reads regular files; a pipe or a device has no size to promise.
        raise RuntimeError(f"{name!r} is not a regular file.")
    return info.st_size


def read_file_chunk(fd: int, position: int, size: int) -> bytes:
    """``size`` bytes of ``fd`` at ``position``; FileChanged if the file no longer has them.

    Reads run on the event loop: regular files have no non-blocking mode, and a 64 KiB
    read from the page cache takes microseconds, less than handing it to a thread would.
    """
    chunk = os.pread(fd, size, position)
    if len(chunk) < size:
        raise FileChanged(
            f"file shrank: {position + len(chunk)} bytes readable, not {position + size}"
        )
    return chunk
