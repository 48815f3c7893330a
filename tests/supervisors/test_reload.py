"""``--reload``: a real reloader process restarting the server when a copied app changes."""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.harness import (
    APPS_DIR,
    HastenProcess,
    RawClient,
    hasten_process,
    listening_on,
    request,
)

APP_FILE = "proc_versioned.py"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    shutil.copy(APPS_DIR / APP_FILE, tmp_path / APP_FILE)
    return tmp_path


def get_body(running: HastenProcess) -> bytes:
    sock = socket.create_connection((running.host, running.port), timeout=5)
    with RawClient(sock) as client:
        client.send(request(headers={"Connection": "close"}))
        return client.read_response().body


def edit_until_reloaded(running: HastenProcess, path: Path, text: str) -> None:
    """Write ``text`` to ``path`` until the reloader reports the change (the watcher may
    still be starting when the first write lands)."""
    marker = "Detected changes"
    count = running.output().count(marker)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        path.write_text(text)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            if running.output().count(marker) > count:
                return
            time.sleep(0.02)
    raise AssertionError(f"no reload:\n{running.output()}")


def wait_for_body(running: HastenProcess, expected: bytes) -> None:
    deadline = time.monotonic() + 20
    body = b""
    while time.monotonic() < deadline:
        try:
            body = get_body(running)
        except (OSError, AssertionError):
            body = b""
        if body == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"still {body!r}, wanted {expected!r}:\n{running.output()}")


def versioned(version: str) -> str:
    return (APPS_DIR / APP_FILE).read_text().replace('b"v1"', f'b"{version}"')


def reloading(app_dir: Path, *options: str) -> contextlib.AbstractContextManager[HastenProcess]:
    return hasten_process(
        "proc_versioned:app",
        "--port",
        "0",
        "--reload",
        "--reload-delay",
        "0.05",
        *options,
        cwd=app_dir,
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_changed_file_is_served_after_reload(app_dir: Path, workers: str) -> None:
    with reloading(app_dir, "--workers", workers) as running:
        assert get_body(running) == b"v1"
        edit_until_reloaded(running, app_dir / APP_FILE, versioned("v2"))
        wait_for_body(running, b"v2")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_syntax_error_is_shown_once_and_the_reloader_recovers(app_dir: Path, workers: str) -> None:
    with reloading(app_dir, "--workers", workers) as running:
        assert get_body(running) == b"v1"
        edit_until_reloaded(running, app_dir / APP_FILE, "def broken(:\n")
        running.wait_for_line("waiting for a file change", timeout=20)
        assert running.output().count("SyntaxError") == 1
        assert running.process.poll() is None
        edit_until_reloaded(running, app_dir / APP_FILE, versioned("v3"))
        wait_for_body(running, b"v3")


def test_files_outside_the_include_globs_do_not_reload(app_dir: Path) -> None:
    with reloading(app_dir, "--reload-include", "*.py", "--reload-exclude", "ignored_*") as running:
        edit_until_reloaded(running, app_dir / APP_FILE, versioned("v2"))  # watcher is up
        (app_dir / "notes.txt").write_text("x")
        (app_dir / "ignored_module.py").write_text("x = 1\n")
        edit_until_reloaded(running, app_dir / APP_FILE, versioned("v3"))
        lines = [line for line in running.lines if "Detected changes" in line]
        assert all(line.split("Detected changes in ")[1].startswith(APP_FILE) for line in lines)
        assert not any("notes.txt" in line or "ignored_module" in line for line in lines)


def server_pid(running: HastenProcess) -> int:
    line = running.wait_for_line("Started server process [")
    return int(line.split("[", 1)[1].split("]", 1)[0])


def test_reloaded_server_gets_its_settings_off_its_command_line(app_dir: Path) -> None:
    secret = "s3cret-not-for-ps"
    with reloading(app_dir, "--ssl-keyfile-password", secret) as running:
        command_line = Path(f"/proc/{server_pid(running)}/cmdline").read_bytes()
        assert get_body(running) == b"v1"
    assert secret.encode() not in command_line


def exited(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever adopted it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_server_exits_when_the_reloader_is_killed(app_dir: Path) -> None:
    with reloading(app_dir) as running:
        server = server_pid(running)
        assert get_body(running) == b"v1"
        running.process.kill()
        deadline = time.monotonic() + 10
        while not exited(server):
            assert time.monotonic() < deadline, "the server outlived its reloader"
            time.sleep(0.02)


def body_over(listener: str) -> bytes:
    host, port = listener.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
    with RawClient(sock) as client:
        client.send(request(headers={"Connection": "close"}))
        return client.read_response().body


@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_bind_is_served_across_a_reload(app_dir: Path, workers: str) -> None:
    with hasten_process(
        "proc_versioned:app",
        "--bind",
        "127.0.0.1:0",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        workers,
        "--reload",
        "--reload-delay",
        "0.05",
        cwd=app_dir,
    ) as running:
        listeners = listening_on(running, 2)
        assert [body_over(listener) for listener in listeners] == [b"v1", b"v1"]
        edit_until_reloaded(running, app_dir / APP_FILE, versioned("v2"))
        wait_for_body(running, b"v2")  # the first listener
        assert [body_over(listener) for listener in listeners] == [b"v2", b"v2"]
