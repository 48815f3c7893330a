"""Real servers for tests: in a thread of the test process, or as a `hasten` subprocess, plus
a raw-socket client that reads HTTP/1.1 responses byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hasten import Config, Server

T = TypeVar("T")
TESTS_DIR = Path(__file__).parent
APPS_DIR = TESTS_DIR / "apps"


@dataclass
class RunningServer:
    server: Server
    host: str
    port: int
    uds: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float = 5.0) -> RawClient:
        if self.uds is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(self.uds)
        else:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return RawClient(sock)


@contextlib.contextmanager
def run_server(app: Any, **settings: Any) -> Iterator[RunningServer]:
    """Serve ``app`` on a free port in a background thread for the duration of the block."""
    if "bind" not in settings:  # a bind replaces host and port, which may not come with it
        settings.setdefault("port", 0)
    settings.setdefault("log_level", "warning")
    config = Config(app=app, **settings)
    server = Server(config)
    failure: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:  # surfaced in the test thread
            failure.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if failure or not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {failure or server.exit_code}")
        time.sleep(0.005)
    sockname = server.servers[0].sockets[0].getsockname()
    if isinstance(sockname, str):
        running = RunningServer(server, "", 0, uds=sockname)
    else:
        running = RunningServer(server, sockname[0], sockname[1])
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(15)
        if thread.is_alive():
            raise RuntimeError("server did not stop within 15 s")
    if failure:
        raise failure[0]


def run_client(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)`` for test-side clients, in a thread of its own.

    Now and then (two full runs in about fifteen, on 3.11 and 3.12) a pytest-xdist worker's
    main thread reported a running event loop it did not own, and ``asyncio.run`` refused
    to start; a new thread carries no such state. The cause was not found.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(coroutine))
        except BaseException as exc:  # re-raised in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes = b""
    chunked: bool = False

    def header(self, name: str) -> str | None:
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class RawClient:
    """A socket that sends exact bytes and parses responses exactly as they arrive."""

    sock: socket.socket
    buffer: bytes = field(default=b"")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before {marker!r}; have {self.buffer[:200]!r}")
        data, _, self.buffer = self.buffer.partition(marker)
        return data

    def _read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ConnectionError(f"closed after {len(self.buffer)} of {size} bytes")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_response(self, *, head_request: bool = False) -> Response:
        """Read one response; a body without framing is read until the server closes."""
        raw_head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        version, status, reason = ([*status_line.split(" ", 2), ""])[:3]
        assert version == "HTTP/1.1", status_line
        headers = []
        for line in header_lines:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        response = Response(int(status), reason, headers, b"", raw_head)
        if head_request or response.status in (204, 304) or 100 <= response.status < 200:
            return response
        if response.header("transfer-encoding") == "chunked":
            response.chunked = True
            body = b""
            while True:
                size = int(self._read_until(b"\r\n"), 16)
                if size == 0:
                    assert self._read_exact(2) == b"\r\n"
                    break
                body += self._read_exact(size)
                assert self._read_exact(2) == b"\r\n"
            response.body = body
        elif response.header("content-length") is not None:
            response.body = self._read_exact(int(response.header("content-length") or 0))
        else:
            while self._fill():
                pass
            response.body, self.buffer = self.buffer, b""
        return response

    def is_closed(self, timeout: float = 2.0) -> bool:
        """Whether the server closed the connection (and sent nothing more) within timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        self.buffer += data
        return not data

    def read_all(self, timeout: float = 5.0) -> bytes:
        """Everything until the server closes the connection."""
        self.sock.settimeout(timeout)
        with contextlib.suppress(ConnectionResetError):
            while self._fill():
                pass
        data, self.buffer = self.buffer, b""
        return data


def request(
    method: str = "GET",
    path: str = "/",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "1.1",
) -> bytes:
    """A well-formed request as bytes."""
    lines = [f"{method} {path} HTTP/{version}", "Host: test"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body and not any(
        name.lower() in ("content-length", "transfer-encoding") for name in (headers or {})
    ):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# -- hasten as a subprocess -------------------------------------------------------------------

_LISTENING = re.compile(
    r"Listening on (?:https?://(?P<host>\S+):(?P<port>\d+)|unix socket (?P<uds>\S+))"
)


@dataclass
class HastenProcess:
    process: subprocess.Popen[str]
    lines: list[str]
    host: str = ""
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self.process.poll() is not None and self._reader_done.is_set():
                break
            time.sleep(0.01)
        raise AssertionError(f"{text!r} not in output:\n{self.output()}")

    def wait(self, timeout: float = 15.0) -> int:
        code = self.process.wait(timeout)
        self._reader_done.wait(5)
        return code

    _reader_done: threading.Event = field(default_factory=threading.Event)


def listening_on(running: HastenProcess, count: int, timeout: float = 15.0) -> list[str]:
    """The first ``count`` distinct places the process logged "Listening on", as logged
    (``http://127.0.0.1:8000``, ``unix socket /run/x.sock``), in order."""
    deadline = time.monotonic() + timeout
    while True:
        found: list[str] = []
        for line in list(running.lines):
            match = _LISTENING.search(line)
            if match and match[0].removeprefix("Listening on ") not in found:
                found.append(match[0].removeprefix("Listening on "))
        if len(found) >= count:
            return found[:count]
        if time.monotonic() > deadline or running.process.poll() is not None:
            raise AssertionError(f"{count} listeners not in output:\n{running.output()}")
        time.sleep(0.01)


def skip_without_ipv6_loopback() -> None:
    """Skip the calling test on a machine that cannot bind ::1."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")


def hasten_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hasten", *args]


def console_script(name: str) -> str:
    """The path of an installed command (``hasten``, ``gunicorn``) of the Python under test."""
    return str(Path(sys.executable).with_name(name))


def spawn_hasten(
    *args: str,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    wait_listening: bool = True,
    program: list[str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> HastenProcess:
    """Start ``python -m hasten ARGS`` (or ``program ARGS``); by default wait until it
    listens and note its port."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        [*program, *args] if program is not None else hasten_command(*args),
        cwd=cwd or APPS_DIR,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        pass_fds=pass_fds,
    )
    running = HastenProcess(process, [])

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append(line)
        running._reader_done.set()

    threading.Thread(target=pump, daemon=True).start()
    if wait_listening:
        try:
            line = running.wait_for_line("Listening on", timeout=15)
        except AssertionError:
            process.kill()
            raise
        match = _LISTENING.search(line)
        assert match, line
        if match["port"]:
            running.host, running.port = match["host"].strip("[]"), int(match["port"])
    return running


@contextlib.contextmanager
def hasten_process(*args: str, **kwargs: Any) -> Iterator[HastenProcess]:
    """``spawn_hasten`` that is always stopped (SIGKILL if SIGTERM is not enough)."""
    running = spawn_hasten(*args, **kwargs)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.terminate()
            try:
                running.process.wait(10)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
