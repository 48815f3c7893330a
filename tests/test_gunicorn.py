"""``gunicorn -k hasten.workers.HastenWorker``: the real gunicorn arbiter running hasten."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness import APPS_DIR, RawClient, request

_LISTENING = re.compile(r"Listening at: https?://127\.0\.0\.1:(\d+)")


@dataclass
class Gunicorn:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    port: int = 0

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in output:\n{self.output()}")
            time.sleep(0.02)

    def get(self, path: str = "/") -> tuple[int, bytes]:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        with RawClient(sock) as client:
            client.send(request(path=path, headers={"Connection": "close"}))
            response = client.read_response()
        return response.status, response.body


@contextlib.contextmanager
def gunicorn(
    *args: str, worker: str = "hasten.workers.HastenWorker", program: str | None = None
) -> Iterator[Gunicorn]:
    """Run gunicorn (``python -m gunicorn``, or the command ``program``) with hasten's
    worker on a free port until the block ends."""
    command = [
        *([program] if program is not None else [sys.executable, "-m", "gunicorn"]),
        "-k",
        worker,
        "-b",
        "127.0.0.1:0",
        # Parallel tests must not share gunicorn's default control socket path.
        "--no-control-socket",
        *args,
    ]
    process = subprocess.Popen(
        command, cwd=APPS_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    running = Gunicorn(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        running.wait_for("Listening at")
        match = _LISTENING.search(running.output())
        assert match, running.output()
        running.port = int(match[1])
        running.wait_for("Application startup complete")
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.parametrize("worker", ["HastenWorker", "HastenAsyncioWorker"])
def test_gunicorn_serves_the_app_through_hasten(worker: str) -> None:
    with gunicorn("proc_pid:app", "--workers", "2", worker=f"hasten.workers.{worker}") as running:
        status, body = running.get()
        assert status == 200
        assert int(body) != running.process.pid
        assert running.output().count("Application startup complete") >= 1


def test_gunicorn_max_requests_replaces_the_worker() -> None:
    with gunicorn("proc_pid:app", "--max-requests", "3") as running:
        first = {running.get()[1] for _ in range(3)}
        assert len(first) == 1
        running.wait_for("Autorestarting worker")
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError):
                if running.get()[1] not in first:
                    break
            assert time.monotonic() < deadline, running.output()
            time.sleep(0.05)


def test_gunicorn_access_log_uses_gunicorn_handlers() -> None:
    with gunicorn("proc_pid:app", "--access-logfile", "-") as running:
        running.get("/logged")
        running.wait_for("/logged")


def test_gunicorn_sigterm_shuts_hasten_down_gracefully() -> None:
    with gunicorn("proc_pid:app", "--graceful-timeout", "5") as running:
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(15) == 0
        running.wait_for("Application shutdown complete")


def test_gunicorn_request_limits_apply_to_hasten() -> None:
    with gunicorn("proc_pid:app", "--limit-request-line", "64") as running:
        assert running.get("/" + "a" * 100)[0] == 414
        assert running.get("/short")[0] == 200


def test_gunicorn_tls_settings_make_hasten_serve_https(tmp_path: Path) -> None:
    import ssl

    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_pem.write_to_path(str(keyfile))
    certificate.cert_chain_pems[0].write_to_path(str(certfile))
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    with gunicorn(
        "proc_pid:app", "--certfile", str(certfile), "--keyfile", str(keyfile)
    ) as running:
        raw = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        with client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            client = RawClient(tls)  # type: ignore[arg-type]
            client.send(request(headers={"Connection": "close"}))
            assert client.read_response().status == 200


def test_gunicorn_binds_are_all_served_by_hasten(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with gunicorn("proc_pid:app", "-b", f"unix:{path}", "--workers", "2") as running:
        running.wait_for(f"Listening on unix socket {path}")
        running.wait_for(f"Listening on http://127.0.0.1:{running.port}")
        over_tcp = running.get()
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            client = RawClient(sock)
            client.send(request(headers={"Connection": "close"}))
            over_unix = client.read_response()
    assert over_tcp[0] == over_unix.status == 200
