"""A file for the file-response tests (pathsend, zerocopysend)."""

from __future__ import annotations

from pathlib import Path

# Larger than the server's 64 KiB reads, and not a multiple of them.
CONTENT = bytes(range(256)) * 1000 + b"end"


def content_file(directory: Path) -> Path:
    """``directory/content.bin``, holding ``CONTENT``."""
    path = directory / "content.bin"
    path.write_bytes(CONTENT)
    return path
