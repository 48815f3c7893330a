"""Static files served by hasten itself, in front of the app (``--static-path-mount``).

:meth:`StaticFiles.decide` is the core: a request's method, path and headers, against the
mount table, become a :class:`Decision` (the status, the headers, and for a body the open
file with the byte range to send). It opens and stats files but never awaits, so it is
tested without a server. :class:`StaticFilesApp` is the thin ASGI wrapper the server puts
in front of the app only when a mount is configured, and :func:`send_file_range` is the
one place a file's bytes leave.

Rules, each documented in docs/security.md:

* A path is refused, with the same 404 as a missing file, when any segment is empty, is or
  starts with ``.`` (dotfiles, ``..``), or decodes to ``/``, ``\\``, NUL or another control
  character; the raw, still-encoded path is what is split, so ``%2f`` cannot join segments.
* Symlinks are followed while their target stays inside the mount (the resolved path is
  checked for containment and for dot segments); a symlink out of the mount is a 404.
* Only regular files are served; a directory serves ``--static-path-dir-to-file`` if set
  and present, else 404 (never a listing).
* A file is opened once, non-blocking (a FIFO would otherwise block the open), and served
  from that descriptor: what was stat'ed is what is sent.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from hasten.asgi import (
    PLAIN_RESPONSE_CONTENT_TYPE,
    ASGIApplication,
    Receive,
    Scope,
    Send,
)
from hasten.asgi import plain_response_body as _plain_body
from hasten.protocols.files import ZEROCOPYSEND_EXTENSION
from hasten.settings import SettingValueError
from hasten.static_fields import (
    UNSATISFIABLE,
    ByteRange,
    coding_weight,
    format_http_date,
    parse_accept_encoding,
    parse_entity_tags,
    parse_http_date,
    parse_range,
)

if TYPE_CHECKING:
    from hasten.config import Config

ALLOWED_METHODS: Final = b"GET, HEAD"
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
_OPEN_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
)
# Precompressed siblings, best first: (content-coding, file name suffix).
_ENCODINGS: Final = ((b"br", ".br"), (b"gzip", ".gz"))
_PREFERENCE: Final = {b"br": 2, b"gzip": 1, b"identity": 0}
# A decoded segment may not contain a separator (of POSIX or Windows), NUL or a control.
_FORBIDDEN_IN_SEGMENT = re.compile(r"[\x00-\x1f\x7f/\\]").search
_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class Mount:
    """A directory served under a URL prefix (``/static``, stored without a trailing ``/``)."""

    prefix: bytes
    directory: str  # resolved: no symlinks, no trailing separator


@dataclass(slots=True)
class Decision:
    """What to answer: ``status`` and ``headers``; then ``body`` or, when ``fd`` is set,
    ``count`` bytes of that open file from ``offset`` (the caller closes it)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    fd: int | None = None
    offset: int = 0
    count: int = 0


@dataclass(slots=True)
class _Representation:
    fd: int
    info: os.stat_result
    content_type: bytes
    coding: bytes
    varies: bool
    etag: bytes = field(init=False)

    def __post_init__(self) -> None:
        # A strong validator (RFC 9110 §8.8.3) that changes whenever the file is replaced
        # (inode) or rewritten (size, mtime_ns); hashed so it does not expose the inode.
        info = self.info
        identity = f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"
        digest = hashlib.blake2b(identity.encode(), digest_size=12).hexdigest()
        self.etag = b'"%s"' % digest.encode()


def check_static_settings(
    routes: Sequence[str], mounts: Sequence[str], dir_to_file: str | None
) -> None:
    """Raise ``SettingValueError`` naming the static-files setting whose value is wrong."""
    if not mounts:
        return
    if len(routes) != len(mounts):
        raise SettingValueError(
            "static_path_route",
            f"static_path_route has {len(routes)} value(s) but static_path_mount has "
            f"{len(mounts)}; each mount needs its route, matched by order",
        )
    for route in routes:
        if not route.startswith("/") or not _is_ascii_path(route):
            raise SettingValueError(
                "static_path_route",
                f"static_path_route={route!r} is not allowed; a route is an ASCII URL path "
                "starting with '/'",
            )
    for mount in mounts:
        if not os.path.isdir(mount):
            raise SettingValueError(
                "static_path_mount",
                f"static_path_mount={mount!r} is not allowed; it must be an existing directory",
            )
    if dir_to_file is not None and (
        not dir_to_file or dir_to_file.startswith(".") or _FORBIDDEN_IN_SEGMENT(dir_to_file)
    ):
        raise SettingValueError(
            "static_path_dir_to_file",
            f"static_path_dir_to_file={dir_to_file!r} is not allowed; use a plain file name",
        )


def _is_ascii_path(route: str) -> bool:
    return route.isascii() and " " not in route and "?" not in route and "#" not in route


class StaticFiles:
    """The mount table and the rules for answering a request under it."""

    __slots__ = ("dir_to_file", "expires", "mounts")

    def __init__(
        self, mounts: Iterable[tuple[str, str]], *, dir_to_file: str | None, expires: int
    ) -> None:
        table = [
            Mount(route.rstrip("/").encode("ascii"), os.path.realpath(directory))
            for route, directory in mounts
        ]
        # The longest prefix first, so /static/img is not shadowed by /static.
        self.mounts = tuple(sorted(table, key=lambda mount: len(mount.prefix), reverse=True))
        self.dir_to_file = dir_to_file
        self.expires = expires

    @classmethod
    def from_config(cls, config: Config) -> StaticFiles:
        """The mount table of ``--static-path-route``/``--static-path-mount`` pairs."""
        return cls(
            zip(config.static_path_route, config.static_path_mount, strict=True),
            dir_to_file=config.static_path_dir_to_file,
            expires=config.static_path_expires,
        )

    def match(self, raw_path: bytes) -> tuple[Mount, bytes] | None:
        """The mount ``raw_path`` falls under, and the rest of the path after its prefix."""
        for mount in self.mounts:
            prefix = mount.prefix
            if raw_path.startswith(prefix):
                rest = raw_path[len(prefix) :]
                if not rest or rest[:1] == b"/":
                    return mount, rest
        return None

    def decide(
        self,
        method: str,
        raw_path: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        *,
        now: float | None = None,
    ) -> Decision | None:
        """The answer to a request, or ``None`` if its path is under no mount (the app's)."""
        matched = self.match(raw_path)
        if matched is None:
            return None
        if method not in ("GET", "HEAD"):
            # RFC 9110 §15.5.6: a 405 lists the methods the target supports.
            return _plain(405, [(b"allow", ALLOWED_METHODS)])
        mount, rest = matched
        fields = _request_fields(headers)
        representation = self._select(mount, rest, fields.get(b"accept-encoding"))
        if representation is None:
            return not_found()
        now = time.time() if now is None else now
        try:
            decision = self._respond(representation, method, fields, now)
        except BaseException:
            os.close(representation.fd)
            raise
        if decision.fd is None:
            os.close(representation.fd)
        return decision

    # -- which file ---------------------------------------------------------------------------

    def _select(
        self, mount: Mount, rest: bytes, accept_encoding: bytes | None
    ) -> _Representation | None:
        resolved = resolve_path(rest)
        if resolved is None:
            return None
        segments, wants_directory = resolved
        opened = _open_inside(mount.directory, segments)
        if opened is None:
            return None
        path, fd, info = opened
        if stat.S_ISDIR(info.st_mode):
            os.close(fd)
            if self.dir_to_file is None:
                return None
            opened = _open_inside(path, [self.dir_to_file], root=mount.directory)
            if opened is None:
                return None
            path, fd, info = opened
        elif wants_directory:
            os.close(fd)  # "file.txt/": POSIX would refuse that path too
            return None
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        return _negotiate(mount.directory, path, fd, info, parse_accept_encoding(accept_encoding))

    # -- what to answer -----------------------------------------------------------------------

    def _respond(
        self,
        chosen: _Representation,
        method: str,
        fields: dict[bytes, bytes],
        now: float,
    ) -> Decision:
        info = chosen.info
        # RFC 9110 §8.8.2.1: never a Last-Modified later than the response's Date.
        modified = min(int(info.st_mtime), int(now))
        headers = self._validator_headers(chosen, modified, now)
        precondition = _evaluate_preconditions(fields, chosen.etag, modified, method)
        if precondition is not None:
            if precondition == 304:
                # RFC 9110 §15.4.5: a 304 carries the fields a 200 would have for caching.
                return Decision(304, headers)
            return _plain(412, [])
        size = info.st_size
        headers.append((b"content-type", chosen.content_type))
        if chosen.coding != b"identity":
            headers.append((b"content-encoding", chosen.coding))
        headers.append((b"accept-ranges", b"bytes"))
        wanted = None
        # RFC 9110 §14.2: Range is defined for GET only; HEAD gets the 200's fields.
        if method == "GET" and _if_range_holds(fields, chosen.etag, modified, now):
            wanted = parse_range(fields.get(b"range"), size)
        if wanted is UNSATISFIABLE:
            # RFC 9110 §15.5.17: a 416 names the current length in Content-Range.
            return _plain(416, [(b"content-range", b"bytes */%d" % size)])
        if isinstance(wanted, ByteRange):
            end = wanted.start + wanted.count - 1
            headers.append((b"content-range", b"bytes %d-%d/%d" % (wanted.start, end, size)))
            headers.append((b"content-length", b"%d" % wanted.count))
            return Decision(206, headers, fd=chosen.fd, offset=wanted.start, count=wanted.count)
        headers.append((b"content-length", b"%d" % size))
        if method == "HEAD":
            return Decision(200, headers)
        return Decision(200, headers, fd=chosen.fd, offset=0, count=size)

    def _validator_headers(
        self, chosen: _Representation, modified: int, now: float
    ) -> list[tuple[bytes, bytes]]:
        headers = [(b"etag", chosen.etag), (b"last-modified", format_http_date(modified))]
        if chosen.varies:
            # RFC 9110 §12.5.5: a response chosen by Accept-Encoding says so, for caches.
            headers.append((b"vary", b"accept-encoding"))
        if self.expires:
            headers.append((b"cache-control", b"max-age=%d" % self.expires))
            headers.append((b"expires", format_http_date(now + self.expires)))
        return headers


def resolve_path(rest: bytes) -> tuple[list[str], bool] | None:
    """The decoded segments of ``rest`` (the raw path after a mount's prefix) and whether it
    names a directory (ends in ``/``); ``None`` for a path that must be refused."""
    if not rest or rest == b"/":
        return [], True
    if rest[:1] != b"/":
        return None
    parts = rest[1:].split(b"/")
    wants_directory = parts[-1] == b""
    if wants_directory:
        parts.pop()
    segments = []
    for part in parts:
        try:
            segment = _unquote(part).decode("utf-8")
        except UnicodeDecodeError:
            return None
        # "" would make the next segment absolute; "." and ".." walk; dotfiles stay private.
        if not segment or segment[0] == "." or _FORBIDDEN_IN_SEGMENT(segment):
            return None
        segments.append(segment)
    return segments, wants_directory


def _unquote(part: bytes) -> bytes:
    if b"%" not in part:
        return part
    return _PERCENT_ESCAPE.sub(lambda match: bytes((int(match.group(1), 16),)), part)


def _open_inside(
    directory: str, segments: list[str], *, root: str | None = None
) -> tuple[str, int, os.stat_result] | None:
    """Open ``directory/segments`` if its resolved path stays inside ``root`` (default:
    ``directory``) and has no dot segment: ``(resolved path, fd, fstat)``, else ``None``."""
    root = directory if root is None else root
    try:
        path = os.path.realpath(os.path.join(directory, *segments))
    except (OSError, ValueError):
        return None
    if path != root:
        inside_prefix = root if root.endswith(os.sep) else root + os.sep  # a mount of "/"
        if not path.startswith(inside_prefix):
            return None  # a symlink out of the mount
        inside = path[len(inside_prefix) :]
        if any(part.startswith(".") for part in inside.split(os.sep)):
            return None  # a symlink to a dotfile inside the mount
    try:
        # Opened by its resolved path with O_NOFOLLOW: a symlink swapped in for the last
        # component since realpath() is refused, not followed.
        fd = os.open(path, _OPEN_FLAGS)
    except (OSError, ValueError):
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    return path, fd, info


def _negotiate(
    root: str, path: str, fd: int, info: os.stat_result, weights: dict[bytes, float] | None
) -> _Representation:
    """The representation to send: the file, or its ``.br``/``.gz`` sibling if the client
    prefers it (RFC 9110 §12.5.3; on equal weights the smaller coding wins)."""
    candidates = [(coding_weight(weights, b"identity"), 0, b"identity", fd, info)]
    for coding, suffix in _ENCODINGS:
        opened = _open_inside(path + suffix, [], root=root)
        if opened is None:
            continue
        if not stat.S_ISREG(opened[2].st_mode):
            os.close(opened[1])
            continue
        weight = coding_weight(weights, coding)
        candidates.append((weight, _PREFERENCE[coding], coding, opened[1], opened[2]))
    acceptable = [candidate for candidate in candidates if candidate[0] > 0]
    # Identity refused (identity;q=0) and no acceptable sibling: RFC 9110 §12.1 lets a
    # server disregard the negotiation and send its default representation, not a 406.
    chosen = max(acceptable, key=lambda c: (c[0], c[1])) if acceptable else candidates[0]
    for candidate in candidates:
        if candidate is not chosen:
            os.close(candidate[3])
    _, _, coding, chosen_fd, chosen_info = chosen
    return _Representation(
        chosen_fd, chosen_info, content_type_for(path), coding, varies=len(candidates) > 1
    )


def content_type_for(path: str) -> bytes:
    """The Content-Type of a file, by its name (``mimetypes``); UTF-8 for text."""
    guessed, encoding = mimetypes.guess_type(os.path.basename(path), strict=False)
    if encoding is not None:
        # "x.tar.gz" is a gzip file to serve as is: labelling it Content-Encoding: gzip
        # would make browsers unpack it on download.
        guessed = "application/gzip" if encoding == "gzip" else None
    if guessed is None:
        return b"application/octet-stream"
    if guessed.startswith("text/"):
        return guessed.encode("ascii") + b"; charset=utf-8"
    return guessed.encode("ascii")


def _request_fields(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    # RFC 9110 §5.3: repeated field lines combine into one comma-separated value (which
    # makes a repeated date invalid, as RFC 9110 §13.1.3 wants it treated).
    fields: dict[bytes, bytes] = {}
    for raw_name, value in headers:
        name = raw_name.lower()
        fields[name] = fields[name] + b", " + value if name in fields else value
    return fields


def _evaluate_preconditions(
    fields: dict[bytes, bytes], etag: bytes, modified: int, method: str
) -> int | None:
    """RFC 9110 §13.2.2, steps 1-4, for GET and HEAD: 412, 304 or None (proceed)."""
    if_match = fields.get(b"if-match")
    if if_match is not None:
        if not _etag_matches(if_match, etag, weak=False):
            return 412
    else:
        since = parse_http_date(fields.get(b"if-unmodified-since"))
        if since is not None and modified > since:
            return 412
    if_none_match = fields.get(b"if-none-match")
    if if_none_match is not None:
        # RFC 9110 §13.1.2: If-None-Match compares weakly.
        if _etag_matches(if_none_match, etag, weak=True):
            return 304
        return None
    since = parse_http_date(fields.get(b"if-modified-since"))
    if since is not None and modified <= since:
        return 304
    return None


def _etag_matches(value: bytes, etag: bytes, *, weak: bool) -> bool:
    if value.strip(b" \t") == b"*":
        return True
    tags = parse_entity_tags(value)
    if tags is None:
        return False
    opaque = etag[1:-1]
    return any(tag == opaque and (weak or not is_weak) for is_weak, tag in tags)


def _if_range_holds(fields: dict[bytes, bytes], etag: bytes, modified: int, now: float) -> bool:
    """RFC 9110 §13.1.5: whether a Range applies (no If-Range, or it still matches)."""
    value = fields.get(b"if-range")
    if value is None or b"range" not in fields:
        return True
    if value.lstrip(b" \t")[:1] in (b'"', b"W"):
        tags = parse_entity_tags(value)
        # A strong comparison of exactly one tag; a weak tag never matches.
        return tags is not None and len(tags) == 1 and tags[0] == (False, etag[1:-1])
    since = parse_http_date(value)
    # A date matches only an exact, strong Last-Modified (at least a second before Date).
    return since is not None and since == modified and modified < int(now) - 1


def _plain(status: int, headers: list[tuple[bytes, bytes]]) -> Decision:
    body = _plain_body(status)
    headers += [
        (b"content-type", PLAIN_RESPONSE_CONTENT_TYPE),
        (b"content-length", b"%d" % len(body)),
    ]
    return Decision(status, headers, body)


def not_found() -> Decision:
    """The one answer to every refused path: the same as for a missing file."""
    return _plain(404, [])


async def send_file_range(send: Send, fd: int, offset: int, count: int) -> None:
    """Send ``count`` bytes of the open file ``fd`` from ``offset`` as the whole response
    body (after ``http.response.start``), ending the response.

    This is the only place a static file's bytes are sent: as one ASGI
    ``http.response.zerocopysend``, which every hasten protocol offers. Plain HTTP/1.1 sends
    it with ``os.sendfile``; TLS and HTTP/2 read it in chunks under their flow control. The
    server aborts the response, and logs it, if the file fails once sending has begun.
    """
    await send({"type": ZEROCOPYSEND_EXTENSION, "file": fd, "offset": offset, "count": count})


class StaticFilesApp:
    """The ASGI app the server runs when static routes are configured: requests under a
    route are answered from the files, everything else goes to ``app`` untouched."""

    __slots__ = ("app", "files")

    def __init__(self, app: ASGIApplication, files: StaticFiles) -> None:
        self.app = app
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        decision = self.files.decide(scope["method"], _target_path(scope), scope["headers"])
        if decision is None:
            return await self.app(scope, receive, send)
        await send(
            {"type": "http.response.start", "status": decision.status, "headers": decision.headers}
        )
        if decision.fd is None:
            await send({"type": "http.response.body", "body": decision.body})
            return
        try:
            await send_file_range(send, decision.fd, decision.offset, decision.count)
        finally:
            os.close(decision.fd)


def _target_path(scope: Scope) -> bytes:
    """The path as the client sent it: ``raw_path`` without the ``root_path`` the server
    prepends to it (routes are matched against what arrives on the wire)."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    root_path: str = scope.get("root_path", "")
    if root_path:
        prefix = root_path.encode("ascii", "replace")
        if raw_path.startswith(prefix):
            raw_path = raw_path[len(prefix) :]
    return raw_path
