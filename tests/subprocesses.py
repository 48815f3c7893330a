"""Processes the harness's ``spawn_hasten`` does not cover: other commands than
``python -m hasten`` (the console script, an embedding program), inherited file descriptors,
and runs that are expected to exit on their own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.harness import APPS_DIR, hasten_command


def run_to_exit(
    *args: str, cwd: Path = APPS_DIR, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hasten ARGS`` to completion and capture its output."""
    return subprocess.run(
        hasten_command(*args),
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@contextlib.contextmanager
def listening_process(
    command: Sequence[str], *, pass_fds: Sequence[int] = (), cwd: Path = APPS_DIR
) -> Iterator[str]:
    """Run ``command`` until it logs "Listening on URL"; yield URL; then SIGTERM it and
    check that it exits 0."""
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        pass_fds=pass_fds,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    output = process.stdout
    lines: list[str] = []
    try:
        for line in output:
            lines.append(line)
            if "Listening on" in line:
                break
        else:
            raise AssertionError("the process never listened:\n" + "".join(lines))
        # Keep reading so that access-log lines never fill the pipe and block the server.
        threading.Thread(target=lines.extend, args=(output,), daemon=True).start()
        yield line.split("Listening on ", 1)[1].split(" ", 1)[0]
        process.terminate()
        assert process.wait(10) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
