"""A directory tree to serve as static files, with the traps the path rules must hold against."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

TEXT = b"hello world\n" * 100


def brotli_stored(data: bytes) -> bytes:
    """``data`` as a valid brotli stream of uncompressed meta-blocks (RFC 7932 §9.2), so the
    tests need no brotli package: curl and httpx-free checks decode it all the same."""
    out = bytearray()
    bits: list[int] = [0]  # WBITS: a single 0 bit means a 16-bit window (RFC 7932 §9.1)

    def put(value: int, count: int) -> None:
        bits.extend((value >> index) & 1 for index in range(count))

    def flush_to_byte() -> None:
        while len(bits) % 8:
            bits.append(0)
        for start in range(0, len(bits), 8):
            out.append(sum(bit << index for index, bit in enumerate(bits[start : start + 8])))
        bits.clear()

    for start in range(0, len(data), 65536):
        block = data[start : start + 65536]
        put(0, 1)  # ISLAST = 0
        put(0, 2)  # MNIBBLES = 4
        put(len(block) - 1, 16)  # MLEN - 1
        put(1, 1)  # ISUNCOMPRESSED
        flush_to_byte()
        out += block
    put(1, 1)  # ISLAST
    put(1, 1)  # ISLASTEMPTY
    flush_to_byte()
    return bytes(out)


def make_tree(base: Path) -> Path:
    """``base/public`` (the mount) beside ``base/outside.txt`` (what must never be served)."""
    public = base / "public"
    (public / "sub").mkdir(parents=True)
    (public / "empty").mkdir()
    (public / ".hidden").mkdir()
    (public / "a.txt").write_bytes(TEXT)
    (public / "a.txt.gz").write_bytes(gzip.compress(TEXT))
    (public / "a.txt.br").write_bytes(brotli_stored(TEXT))
    (public / "only-gz.css").write_bytes(b"body{}\n")
    (public / "only-gz.css.gz").write_bytes(gzip.compress(b"body{}\n"))
    (public / "plain.bin").write_bytes(bytes(range(256)))
    (public / "archive.tar.gz").write_bytes(gzip.compress(b"tar"))
    (public / "sub" / "index.html").write_bytes(b"<h1>index</h1>\n")
    (public / ".env").write_bytes(b"SECRET=1\n")
    (public / ".hidden" / "x.txt").write_bytes(b"hidden\n")
    (base / "outside.txt").write_bytes(b"outside\n")
    (public / "escape").symlink_to(base / "outside.txt")
    (public / "escape-dir").symlink_to(base)
    (public / "inside-link.txt").symlink_to(public / "a.txt")
    (public / "dot-link.txt").symlink_to(public / ".env")
    os.mkfifo(public / "fifo")
    return public


HOSTILE_PATHS = [
    b"/static/../outside.txt",
    b"/static/%2e%2e/outside.txt",
    b"/static/%2E%2E/outside.txt",
    b"/static/..%2foutside.txt",
    b"/static/sub%2f..%2f..%2foutside.txt",
    b"/static/..%5coutside.txt",
    b"/static/sub%5c..%5c..%5coutside.txt",
    b"/static/a.txt%00.png",
    b"/static//etc/passwd",
    b"/static/%2fetc/passwd",
    b"/static/escape",
    b"/static/escape-dir/outside.txt",
    b"/static/.env",
    b"/static/%2eenv",
    b"/static/.hidden/x.txt",
    b"/static/dot-link.txt",
    b"/static/empty/",
    b"/static/empty",
    b"/static/fifo",
    b"/static/missing.txt",
    b"/static/a.txt/",
    b"/static/%ff%fe",
]
