"""The worker supervisor: N forked worker processes serving the sockets it bound once.

The supervisor never imports the app and never accepts a connection. It keeps ``--workers``
processes alive (replacing the dead, with backoff when they die at startup), kills a worker
whose event loop stops answering the health check, and recycles workers gracefully: a new
worker is serving before the one it replaces is told to stop, so the shared listening socket
always has someone accepting.

Signals: SIGHUP restarts every worker that way, one at a time; SIGTTIN / SIGTTOU add / remove
a worker; SIGINT / SIGTERM stop all of them gracefully (a second one forces them).
"""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hasten.binds import (
    ListenAddress,
    ListeningSocket,
    TCPAddress,
    bind_listening,
    reserve_port,
)
from hasten.config import Config
from hasten.logs import error_logger
from hasten.metrics import MetricsEndpoint
from hasten.server import STARTUP_FAILURE
from hasten.supervisors.child import (
    READY,
    RETIRE,
    STOP,
    SUPERVISOR_SIGNALS,
    exit_forked_child,
    reset_inherited_signals,
    run_worker,
)

# How long the supervisor sleeps when nothing happens; signals and worker messages wake it.
_TICK = 0.2
# A worker that keeps dying at startup is restarted after 0.5 s, 1 s, 2 s ... at most 30 s.
_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0
# Extra time a stopping worker gets beyond --timeout-graceful-shutdown before SIGKILL.
_KILL_GRACE = 5.0
_MEMORY_CHECK_INTERVAL = 1.0
_MIB = 1024 * 1024


@dataclass(eq=False)
class WorkerHandle:
    """What the supervisor knows about one worker process."""

    pid: int
    channel: socket.socket
    last_heartbeat: float
    ready: bool = False
    # Waiting for its replacement to be ready before it is told to stop.
    retiring: bool = False
    stopping_since: float | None = None
    unhealthy: bool = False

    @property
    def stopping(self) -> bool:
        return self.stopping_since is not None


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def resident_memory_bytes(pid: int) -> int | None:
    """The resident set size of process ``pid`` (Linux /proc), or None when unknown."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class WorkerSupervisor:
    """Run ``config.workers`` worker processes until SIGINT/SIGTERM; ``run()`` blocks."""

    config: Config
    sockets: Sequence[ListeningSocket] = ()
    workers: dict[int, WorkerHandle] = field(default_factory=dict)
    exit_code: int = 0
    _target: int = 0
    _ever_ready: bool = False
    _stop_requested: int = 0
    _stop_deadline: float | None = None
    _startup_failures: int = 0
    _next_spawn_at: float = 0.0
    _next_memory_check: float = 0.0
    _retire_queue: collections.deque[int] = field(default_factory=collections.deque)
    _signals: collections.deque[int] = field(default_factory=collections.deque)
    _metrics: MetricsEndpoint | None = None
    # --reuse-port: the bound, not listening sockets that hold the ports for the workers' own.
    _reserved: list[socket.socket] = field(default_factory=list)
    # --reuse-port: what each worker listens on, in order: a socket the supervisor bound
    # (Unix, inherited), or a TCP address it binds itself, on the port reserved for it.
    _plan: list[ListeningSocket | ListenAddress] = field(default_factory=list)

    def run(self) -> int:
        """Bind (unless given sockets), supervise until stopped, return the exit status."""
        config = self.config
        self._target = config.workers
        try:
            if not self.sockets:
                self._bind()
            if config.metrics_bind is not None:
                self._metrics = MetricsEndpoint(
                    config.metrics_bind,
                    timeout=config.timeout_metrics_scrape,
                    limit=config.limit_metrics_scrapes,
                )
        except (OSError, RuntimeError) as exc:  # a socket that cannot be bound; no metrics extra
            self._close_listening()
            error_logger.error("%s", exc)
            return STARTUP_FAILURE
        error_logger.info(
            "Started supervisor process [%d] for %d worker(s)%s",
            os.getpid(),
            self._target,
            " (SO_REUSEPORT)" if self._reserved else "",
        )
        self._selector = selectors.DefaultSelector()
        if self._metrics is not None:
            self._metrics.attach(self._selector)
        wake_reader, wake_writer = socket.socketpair()
        wake_reader.setblocking(False)
        wake_writer.setblocking(False)
        self._selector.register(wake_reader, selectors.EVENT_READ, None)
        self._wake_sockets = (wake_reader, wake_writer)
        previous_wakeup = signal.set_wakeup_fd(wake_writer.fileno())
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SUPERVISOR_SIGNALS}
        try:
            self._supervise()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._selector.close()
            wake_reader.close()
            wake_writer.close()
            self._close_listening()
            if self._metrics is not None:
                self._metrics.close()
        error_logger.info("Stopped supervisor process [%d]", os.getpid())
        return self.exit_code

    def _bind(self) -> None:
        """Bind every listen address once; with --reuse-port, reserve each TCP port for the
        workers' own sockets instead (a Unix or inherited socket is shared all the same)."""
        config = self.config
        if not config.reuse_port:
            self.sockets = bind_listening(config.listen_addresses, backlog=config.backlog)
            return
        for item in config.listen_addresses:
            address = item.address
            if isinstance(address, TCPAddress):
                reserved = reserve_port(address)
                self._reserved.append(reserved)
                # Port 0 is resolved once, here: every worker must listen on the same port.
                port = reserved.getsockname()[1]
                self._plan.append(ListenAddress(TCPAddress(address.host, port), item.insecure))
            else:
                (shared,) = bind_listening([item], backlog=config.backlog)
                self._plan.append(shared)

    def _close_listening(self) -> None:
        for sock in self._reserved:
            sock.close()
        for item in self._plan:
            if isinstance(item, ListeningSocket):
                item.sock.close()

    def _on_signal(self, sig: int, _frame: object) -> None:
        self._signals.append(sig)

    def _supervise(self) -> None:
        while True:
            for key, mask in self._selector.select(_TICK):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_sockets[0].recv(4096)
                elif isinstance(key.data, WorkerHandle):
                    self._read_messages(key.data)
                else:
                    key.data(mask)  # a metrics scrape: a bounded step of non-blocking I/O
            self._handle_signals()
            self._reap()
            now = time.monotonic()
            if self._metrics is not None:
                self._metrics.cut_overdue(now)
            # Also while stopping: a worker whose event loop hangs never handles SIGTERM.
            self._check_health(now)
            if self._stop_requested:
                if not self.workers:
                    return
                if self._stop_deadline is not None and now >= self._stop_deadline:
                    self._kill_all("did not stop in time")
                continue
            self._check_memory(now)
            self._advance_retirement()
            self._keep_worker_count(now)

    # -- workers ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child; its coverage is not collected
            code = 1
            try:
                parent_end.close()
                self._close_in_child()
                reset_inherited_signals()
                code = run_worker(self.config, self._child_sockets(), child_end)
            except BaseException:
                error_logger.exception("Worker [%d] crashed", os.getpid())
            finally:
                exit_forked_child(code)
        child_end.close()
        parent_end.setblocking(False)
        handle = WorkerHandle(pid, parent_end, last_heartbeat=time.monotonic())
        self.workers[pid] = handle
        self._selector.register(parent_end, selectors.EVENT_READ, handle)

    def _close_in_child(self) -> None:
        self._selector.close()
        if self._metrics is not None:
            self._metrics.close_sockets()
        for reserved in self._reserved:
            reserved.close()  # a worker that kept it would hold the port after us
        for sock in self._wake_sockets:
            sock.close()
        for handle in self.workers.values():
            handle.channel.close()

    def _child_sockets(self) -> Sequence[ListeningSocket]:
        if not self._plan:
            return self.sockets
        # --reuse-port: each worker listens on its own socket bound to the same port.
        own = [item for item in self._plan if isinstance(item, ListenAddress)]
        bound = iter(bind_listening(own, backlog=self.config.backlog, reuse_port=True))
        return [item if isinstance(item, ListeningSocket) else next(bound) for item in self._plan]

    def _read_messages(self, handle: WorkerHandle) -> None:
        try:
            data = handle.channel.recv(4096)
        except (BlockingIOError, ConnectionError):
            return
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(handle.channel)
            return
        handle.last_heartbeat = time.monotonic()  # every message counts as a heartbeat
        if READY in data and not handle.ready:
            error_logger.info("Worker [%d] is serving", handle.pid)
            handle.ready = True
            self._ever_ready = True
            self._startup_failures = 0
        if RETIRE in data and handle.pid not in self._retire_queue and not handle.retiring:
            self._retire_queue.append(handle.pid)

    def _retire(self, handle: WorkerHandle) -> None:
        """Ask a worker to stop accepting and then shut down gracefully."""
        handle.stopping_since = time.monotonic()
        try:
            handle.channel.send(STOP)
        except OSError:
            self._terminate(handle)

    def _terminate(self, handle: WorkerHandle, sig: int = signal.SIGTERM) -> None:
        if handle.stopping_since is None:
            handle.stopping_since = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle.pid, sig)

    def _kill_all(self, reason: str) -> None:
        for handle in self.workers.values():
            error_logger.warning("Killing worker [%d]: %s", handle.pid, reason)
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, signal.SIGKILL)
        self._stop_deadline = None

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            handle = self.workers.pop(pid, None)
            if handle is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(handle.channel)
            handle.channel.close()
            if self._metrics is not None:
                self._metrics.worker_exited(pid)
            self._worker_exited(handle, status)

    def _worker_exited(self, handle: WorkerHandle, status: int) -> None:
        how = _describe_exit(status)
        if handle.stopping and not handle.unhealthy:
            error_logger.info("Worker [%d] stopped (%s)", handle.pid, how)
            return
        if self._stop_requested:
            return
        if handle.ready or handle.unhealthy:
            error_logger.warning("Worker [%d] died (%s); starting a new one", handle.pid, how)
            self._count_restart("unresponsive" if handle.unhealthy else "died")
            return
        if not self._ever_ready:
            code = os.waitstatus_to_exitcode(status)
            error_logger.error(
                "Worker [%d] failed to start (%s); stopping the supervisor", handle.pid, how
            )
            self.exit_code = code if code > 0 else 1
            self._stop()
            return
        self._startup_failures += 1
        delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (self._startup_failures - 1))
        self._next_spawn_at = time.monotonic() + delay
        error_logger.error(
            "Worker [%d] died during startup (%s); starting a new one in %.1f s",
            handle.pid,
            how,
            delay,
        )

    def _count_restart(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.restarts.labels(reason).inc()

    # -- policy ----------------------------------------------------------------------------

    def _serving(self) -> list[WorkerHandle]:
        """Workers that count towards --workers: not stopping, not waiting to be replaced."""
        return [h for h in self.workers.values() if not h.stopping and not h.retiring]

    def _keep_worker_count(self, now: float) -> None:
        serving = self._serving()
        if len(serving) > self._target:
            for handle in sorted(serving, key=lambda h: h.pid)[self._target :]:
                self._retire(handle)
            return
        if now < self._next_spawn_at:
            return
        for _ in range(self._target - len(serving)):
            self._spawn()

    def _advance_retirement(self) -> None:
        retiring = [h for h in self.workers.values() if h.retiring and not h.stopping]
        if retiring:
            serving = self._serving()
            if len(serving) >= self._target and all(h.ready for h in serving):
                for handle in retiring:
                    self._retire(handle)
                    self._count_restart("recycled")
            return
        while self._retire_queue:
            candidate = self.workers.get(self._retire_queue.popleft())
            if candidate is not None and not candidate.stopping:
                candidate.retiring = True
                return

    def _check_health(self, now: float) -> None:
        timeout = self.config.timeout_worker_healthcheck
        for handle in self.workers.values():
            if handle.ready and not handle.unhealthy and now - handle.last_heartbeat > timeout:
                # Judge a worker on what it sent, not on when this loop last looked: heartbeats
                # still queued in its channel count, however busy the supervisor was.
                self._read_messages(handle)
                if time.monotonic() - handle.last_heartbeat <= timeout:
                    continue
                error_logger.error(
                    "Worker [%d] did not answer the health check for %.1f s; killing it",
                    handle.pid,
                    timeout,
                )
                handle.unhealthy = True
                self._terminate(handle, signal.SIGKILL)
            elif handle.stopping_since is not None and not handle.unhealthy:
                graceful = self.config.timeout_graceful_shutdown
                if graceful is not None and now - handle.stopping_since > graceful + _KILL_GRACE:
                    handle.unhealthy = True
                    self._terminate(handle, signal.SIGKILL)

    def _check_memory(self, now: float) -> None:
        limit = self.config.limit_max_memory
        if limit is None or now < self._next_memory_check:
            return
        self._next_memory_check = now + _MEMORY_CHECK_INTERVAL
        for handle in self._serving():
            rss = resident_memory_bytes(handle.pid)
            if rss is not None and rss > limit * _MIB and handle.pid not in self._retire_queue:
                error_logger.warning(
                    "Worker [%d] uses %.0f MiB (limit %g MiB); replacing it",
                    handle.pid,
                    rss / _MIB,
                    limit,
                )
                self._retire_queue.append(handle.pid)

    # -- signals ---------------------------------------------------------------------------

    def _handle_signals(self) -> None:
        while self._signals:
            sig = self._signals.popleft()
            if sig in (signal.SIGINT, signal.SIGTERM):
                self._on_stop_signal(sig)
            elif self._stop_requested:
                continue
            elif sig == signal.SIGHUP:
                error_logger.info("Received SIGHUP: restarting the workers one at a time")
                for handle in self._serving():
                    if handle.pid not in self._retire_queue:
                        self._retire_queue.append(handle.pid)
            elif sig == signal.SIGTTIN:
                self._target += 1
                error_logger.info("Received SIGTTIN: now %d worker(s)", self._target)
            elif sig == signal.SIGTTOU:
                if self._target > 1:
                    self._target -= 1
                error_logger.info("Received SIGTTOU: now %d worker(s)", self._target)

    def _on_stop_signal(self, sig: int) -> None:
        if self._stop_requested:
            error_logger.warning(
                "Received %s again: forcing the workers to stop", signal.Signals(sig).name
            )
            for handle in self.workers.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(handle.pid, signal.SIGINT)
            return
        error_logger.info("Received %s: stopping the workers", signal.Signals(sig).name)
        self._stop()

    def _stop(self) -> None:
        self._stop_requested += 1
        graceful = self.config.timeout_graceful_shutdown
        if graceful is not None:
            self._stop_deadline = time.monotonic() + graceful + _KILL_GRACE
        for handle in self.workers.values():
            self._terminate(handle)
