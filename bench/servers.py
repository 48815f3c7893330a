"""The servers under test: their command lines, and running one pinned to a CPU."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

APPS_DIR = Path(__file__).parent / "apps"
SERVER_CPU = "0"
CLIENT_CPU = "1"
_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Certificate:
    """A certificate chain and its private key, both PEM files."""

    certfile: str
    keyfile: str


def self_signed_certificate(directory: str) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made by ``openssl`` in ``directory`` (h2load
    verifies no certificate; the bench venv has no Python package that makes one)."""
    made = Certificate(os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", made.keyfile, "-out", made.certfile],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return made


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server on an app (``module:attr``) with access logs off."""

    name: str
    argv: tuple[str, ...]  # {app}, {port} and {keep_alive} are filled in
    tls: tuple[str, ...] = ()  # the options that serve TLS: {certfile} and {keyfile} filled in

    def command(
        self,
        app: str,
        port: int,
        keep_alive: int,
        options: tuple[str, ...] = (),
        certificate: Certificate | None = None,
    ) -> list[str]:
        values = {"app": app, "port": str(port), "keep_alive": str(keep_alive)}
        argv = [part.format(**values) for part in self.argv] + list(options)
        if certificate is not None:
            files = {"certfile": certificate.certfile, "keyfile": certificate.keyfile}
            argv += [part.format(**files) for part in self.tls]
        return argv


PY = sys.executable
# Access logs are off on every server (hasten and uvicorn log them by default; granian and
# hypercorn do not), and each runs one process with its fastest event loop.
HASTEN = ServerSpec(
    "hasten",
    (PY, "-m", "hasten", "{app}", "--host", "127.0.0.1", "--port", "{port}",
     "--no-access-log", "--log-level", "warning", "--loop", "uvloop",
     "--timeout-keep-alive", "{keep_alive}"),
    ("--ssl-certfile", "{certfile}", "--ssl-keyfile", "{keyfile}"),
)  # fmt: skip
UVICORN = ServerSpec(
    "uvicorn",
    (PY, "-m", "uvicorn", "{app}", "--host", "127.0.0.1", "--port", "{port}",
     "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
     "--ws", "websockets", "--timeout-keep-alive", "{keep_alive}"),
    ("--ssl-certfile", "{certfile}", "--ssl-keyfile", "{keyfile}"),
)  # fmt: skip
GRANIAN = ServerSpec(
    "granian",
    (str(_BIN / "granian"), "--interface", "asgi", "--workers", "1", "--host", "127.0.0.1",
     "--port", "{port}", "--no-access-log", "--log-level", "warning", "{app}"),
    ("--ssl-certificate", "{certfile}", "--ssl-keyfile", "{keyfile}"),
)  # fmt: skip
HYPERCORN = ServerSpec(
    "hypercorn",
    (PY, "-m", "hypercorn", "{app}", "--bind", "127.0.0.1:{port}", "--worker-class", "uvloop",
     "--log-level", "warning", "--keep-alive", "{keep_alive}"),
    ("--certfile", "{certfile}", "--keyfile", "{keyfile}"),
)  # fmt: skip

PEERS = (HASTEN, UVICORN, GRANIAN)
BASELINE_NAME = "hasten-base"


def baseline(python: str) -> ServerSpec:
    """hasten as another Python installed it (``make bench BASELINE=REV``), run exactly as
    ``HASTEN`` is, so that two builds of hasten are compared side by side in one run."""
    return ServerSpec(BASELINE_NAME, (python, *HASTEN.argv[1:]), HASTEN.tls)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (granian serves from a child process)."""
    found = [pid]
    for current in found:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    found.extend(int(child) for child in children.read().split())
    return found


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants, from /proc/PID/status (VmRSS)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{member}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


class RunningServer:
    """A server process pinned to SERVER_CPU, listening on 127.0.0.1:port."""

    def __init__(
        self,
        spec: ServerSpec,
        app: str,
        keep_alive: int = 5,
        options: tuple[str, ...] = (),
        certificate: Certificate | None = None,
    ) -> None:
        self.spec = spec
        self.port = free_port()
        # A file, not a pipe: a server that logs a lot must never block on a full pipe.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the process
        command = spec.command(app, self.port, keep_alive, options, certificate)
        argv = ["taskset", "-c", SERVER_CPU, *command]
        self.process = subprocess.Popen(
            argv,
            cwd=APPS_DIR,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited at startup:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.spec.name} did not listen within {timeout} s")

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def output(self) -> str:
        """What the server printed so far (its warnings and errors)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.log.close()


@contextlib.contextmanager
def serving(
    spec: ServerSpec,
    app: str,
    keep_alive: int = 5,
    options: tuple[str, ...] = (),
    certificate: Certificate | None = None,
) -> Iterator[RunningServer]:
    server = RunningServer(spec, app, keep_alive, options, certificate)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
