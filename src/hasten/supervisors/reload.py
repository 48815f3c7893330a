"""``--reload``: run the server in a child process and restart it when a watched file changes.

The reloader binds the sockets once, so the address stays the same across restarts, and
starts a fresh interpreter for each generation of the code (nothing of the app is ever
imported here). A child that fails to start (a syntax error, say) is not restarted in a
loop: its error is shown once and the reloader waits for the next change.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fnmatch
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import watchfiles

from hasten.binds import ListeningSocket, bind_listening
from hasten.config import Config
from hasten.importer import AppLoadError, load_app
from hasten.logs import error_logger
from hasten.server import STARTUP_FAILURE
from hasten.supervisors import needs_supervisor
from hasten.supervisors.child import APP_LOAD_FAILURE, log_load_error, run_worker
from hasten.supervisors.multiprocess import WorkerSupervisor

DEFAULT_INCLUDE = ("*.py",)
# How often the watcher returns control, to notice a child that exited on its own.
_WATCH_TIMEOUT_MS = 500
_STOP_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ReloadFilter:
    """Which changed paths trigger a reload: ``--reload-include`` minus ``--reload-exclude``.

    Version-control, cache and editor files are never watched (watchfiles' default filter).
    """

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self.include = tuple(include) or DEFAULT_INCLUDE
        self.exclude = tuple(exclude)
        self.default = watchfiles.DefaultFilter()

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        if not self.default(change, path):
            return False
        candidate = Path(path)
        if any(
            fnmatch.fnmatch(part, pattern) for pattern in self.exclude for part in candidate.parts
        ):
            return False
        return any(fnmatch.fnmatch(candidate.name, pattern) for pattern in self.include)


def _child_payload(config: Config, sockets: Sequence[ListeningSocket]) -> bytes:
    settings = {item.name: getattr(config, item.name) for item in dataclasses.fields(config)}
    settings.update(reload=False, fd=None)
    listening = [[item.sock.fileno(), item.insecure] for item in sockets]
    return json.dumps(
        {"settings": settings, "listening": listening, "reloader": os.getpid()}
    ).encode()


def _child_command(settings_fd: int) -> list[str]:
    # Only the number of the pipe the settings come through: argv is visible to every local
    # user (ps, /proc/PID/cmdline), and the settings may hold secrets.
    return [
        sys.executable,
        "-c",
        "from hasten.supervisors.reload import child_main; child_main()",
        str(settings_fd),
    ]


def child_main() -> None:
    """Entry point of a reloaded server process: settings and socket fds come by a pipe."""
    with open(int(sys.argv[1]), "rb") as settings_pipe:
        payload: dict[str, Any] = json.loads(settings_pipe.read())
    exit_with_parent(payload["reloader"])
    config = Config(**payload["settings"])
    config.configure_logging()
    sockets = [
        ListeningSocket(socket.socket(fileno=fd), insecure) for fd, insecure in payload["listening"]
    ]
    if needs_supervisor(config):
        # This interpreter lives for one generation of the code: import the app once here,
        # so an error shows once, not once per worker, and the workers inherit it on fork.
        try:
            app = load_app(config.app, factory=config.factory, app_dir=config.app_dir)
        except AppLoadError as exc:
            log_load_error(config, exc)
            sys.exit(APP_LOAD_FAILURE)
        config = dataclasses.replace(config, app=app, factory=False)
        sys.exit(WorkerSupervisor(config, sockets).run())
    sys.exit(run_worker(config, sockets))


def exit_with_parent(reloader_pid: int) -> None:
    """Have the kernel send SIGTERM to this process when the reloader dies, even by SIGKILL,
    so a server never keeps serving old code unwatched (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            error_logger.warning(
                "Cannot tie the server to the reloader: %s", os.strerror(ctypes.get_errno())
            )
    if os.getppid() != reloader_pid:  # it died before the request above took effect
        error_logger.warning("The reloader [%d] is gone; exiting", reloader_pid)
        sys.exit(0)


class Reloader:
    """Watch files, and run the server in a child process restarted on every change."""

    def __init__(self, config: Config) -> None:
        if not isinstance(config.app, str):
            raise ValueError("reload needs the app as an import string, module:attribute")
        self.config = config
        self.directories = [Path(d).resolve() for d in config.reload_dir] or [Path.cwd()]
        self.stop_event = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self._signals_received = 0

    def run(self) -> int:
        """Serve and reload until SIGINT/SIGTERM; return the exit status."""
        config = self.config
        try:
            sockets = bind_listening(
                config.listen_addresses, backlog=config.backlog, reuse_port=config.reuse_port
            )
        except OSError as exc:
            error_logger.error("%s", exc)
            return STARTUP_FAILURE
        for item in sockets:
            item.sock.set_inheritable(True)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        error_logger.info(
            "Started reloader process [%d] watching %s",
            os.getpid(),
            ", ".join(str(d) for d in self.directories),
        )
        try:
            self._start(config, sockets)
            waiting_reported = False
            for changes in watchfiles.watch(
                *self.directories,
                watch_filter=ReloadFilter(config.reload_include, config.reload_exclude),
                step=int(config.reload_delay * 1000),
                stop_event=self.stop_event,
                rust_timeout=_WATCH_TIMEOUT_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
            ):
                if changes:
                    names = sorted({os.path.relpath(path) for _, path in changes})
                    error_logger.warning("Detected changes in %s. Reloading...", ", ".join(names))
                    self._stop_child()
                    self._start(config, sockets)
                    waiting_reported = False
                elif (
                    self.child is not None
                    and self.child.poll() is not None
                    and not waiting_reported
                ):
                    error_logger.error(
                        "The server exited (status %d); waiting for a file change to restart it",
                        self.child.returncode,
                    )
                    waiting_reported = True
        finally:
            self._stop_child()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for item in sockets:
                item.sock.close()
        error_logger.info("Stopped reloader process [%d]", os.getpid())
        return 0

    def _on_signal(self, sig: int, _frame: object) -> None:
        self._signals_received += 1
        self.stop_event.set()
        if self._signals_received > 1 and self.child is not None and self.child.poll() is None:
            self.child.kill()

    def _start(self, config: Config, sockets: Sequence[ListeningSocket]) -> None:
        read_end, write_end = os.pipe()
        fds = [item.sock.fileno() for item in sockets]
        with open(write_end, "wb") as settings_pipe:
            try:
                self.child = subprocess.Popen(_child_command(read_end), pass_fds=[*fds, read_end])
            finally:
                os.close(read_end)
            with contextlib.suppress(BrokenPipeError):  # the child died before reading
                settings_pipe.write(_child_payload(config, sockets))

    def _stop_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        graceful = self.config.timeout_graceful_shutdown
        try:
            child.wait(_STOP_TIMEOUT if graceful is None else graceful + _STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            error_logger.warning("The server did not stop in time; killing it")
            child.kill()
            child.wait()
