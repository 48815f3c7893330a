"""The worker side of a supervised process: serve the inherited sockets, report to the parent.

A worker tells its supervisor, one byte at a time over a socket pair, that it is serving
(``READY``), that its event loop is alive (``HEARTBEAT``, the health check), and that it has
reached ``--limit-max-requests`` and wants to be replaced (``RETIRE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from hasten.asgi import ASGIApplication, Receive, Scope, Send
from hasten.binds import ListeningSocket
from hasten.config import Config
from hasten.importer import AppLoadError, load_app
from hasten.logs import error_logger
from hasten.metrics import WorkerMetrics
from hasten.server import Server, loop_factory

READY = b"r"
HEARTBEAT = b"h"
RETIRE = b"x"
# From the supervisor: stop accepting, then shut down gracefully.
STOP = b"s"

APP_LOAD_FAILURE = 1
# Signals the supervisor handles itself; a worker inherits its handlers across fork().
SUPERVISOR_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)
# Until the server listens, look often for it so a rolling restart waits no longer than needed.
_READY_POLL_INTERVAL = 0.01
# A connection accepted just before the listener closed has usually not delivered its request
# yet, and a graceful shutdown would close it as idle; let those requests arrive first.
_LATE_REQUEST_GRACE = 0.25


def heartbeat_interval(config: Config) -> float:
    """How often a worker reports: several times per health-check timeout, at most 1 s."""
    return min(1.0, config.timeout_worker_healthcheck / 4)


class RequestCounter:
    """ASGI middleware that calls ``on_limit`` once ``limit`` requests have started."""

    def __init__(self, app: ASGIApplication, limit: int, on_limit: Callable[[], None]) -> None:
        self.app = app
        self.limit = limit
        self.on_limit = on_limit
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            self.count += 1
            if self.count == self.limit:
                error_logger.info(
                    "Worker [%d] served %d requests; asking to be replaced", os.getpid(), self.limit
                )
                self.on_limit()
        await self.app(scope, receive, send)


def reset_inherited_signals() -> None:
    """Undo the supervisor's signal setup in a freshly forked child."""
    signal.set_wakeup_fd(-1)
    for sig in SUPERVISOR_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    # A worker left to the default action would be stopped by these job-control signals.
    signal.signal(signal.SIGTTIN, signal.SIG_IGN)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


class WorkerChannel:
    """The worker's end of the pipe to its supervisor; a closed pipe means an orphan."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.server: Server | None = None  # set by report(), once the worker serves
        self.stop_task: asyncio.Task[None] | None = None
        sock.setblocking(False)

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self._orphaned()
        elif STOP in data and self.stop_task is None:
            self.stop_task = asyncio.get_running_loop().create_task(self._stop())

    async def _stop(self) -> None:
        server = self.server
        if server is None:
            return
        for listener in server.servers:
            listener.close()
        await asyncio.sleep(_LATE_REQUEST_GRACE)
        server.should_exit = True

    def send(self, message: bytes) -> None:
        try:
            self.sock.send(message)
        except BlockingIOError:
            pass  # the supervisor is behind; a lost heartbeat is harmless
        except OSError:
            self._orphaned()

    def _orphaned(self) -> None:
        error_logger.warning("Worker [%d] lost its supervisor; stopping", os.getpid())
        if self.server is not None:
            self.server.should_exit = True

    async def report(self, server: Server, interval: float) -> None:
        """Say READY once ``server`` listens, then HEARTBEAT every ``interval`` seconds."""
        self.server = server
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._on_readable)
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(_READY_POLL_INTERVAL)
        self.send(READY)
        while True:
            await asyncio.sleep(interval)
            self.send(HEARTBEAT)


def log_load_error(config: Config, exc: AppLoadError) -> None:
    """The one error line for an app that cannot be loaded (with traceback at debug level)."""
    error_logger.error(
        "Error loading ASGI app. %s",
        exc,
        exc_info=exc if config.log_level_number <= logging.DEBUG else None,
    )


def run_worker(
    config: Config, sockets: Sequence[ListeningSocket], channel: socket.socket | None = None
) -> int:
    """Serve ``sockets`` in this (forked) process until told to stop; return the exit status."""
    reporter = WorkerChannel(channel) if channel is not None else None
    metrics = WorkerMetrics() if config.metrics_bind is not None else None
    try:
        if reporter is not None and (config.limit_max_requests is not None or metrics):
            app = load_app(config.app, factory=config.factory, app_dir=config.app_dir)
            if metrics is not None:
                app = metrics.wrap(app)
            if config.limit_max_requests is not None:
                limit = config.limit_max_requests + random.randint(
                    0, config.limit_max_requests_jitter
                )
                app = RequestCounter(app, limit, functools.partial(reporter.send, RETIRE))
            config = dataclasses.replace(config, app=app, factory=False)
        server = Server(config)

        async def serve() -> None:
            helpers = []
            if reporter is not None:
                interval = heartbeat_interval(config)
                helpers.append(asyncio.create_task(reporter.report(server, interval)))
            if metrics is not None:
                helpers.append(asyncio.create_task(metrics.sample_connections(server)))
            try:
                await server.serve(sockets)
            finally:
                for helper in helpers:
                    helper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await helper

        with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
            runner.run(serve())
        # Served and drained: a late stop signal (sent to the whole process group, say) must
        # not turn this clean exit into a death by signal.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except AppLoadError as exc:
        log_load_error(config, exc)
        return APP_LOAD_FAILURE
    if server.exit_code:
        return server.exit_code
    return 0


def exit_forked_child(code: int) -> None:
    """Leave a forked child without running the parent's cleanup (atexit, finally blocks)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
