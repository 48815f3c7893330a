"""Prometheus metrics (``--metrics-bind HOST:PORT``, extra ``hasten[metrics]``).

Workers record into prometheus_client's multi-process files, in a directory the supervisor
creates; the supervisor answers scrapes with the sum over all workers, alive or gone, so the
numbers survive worker restarts. Served from the supervisor's own event loop (no thread),
with non-blocking I/O: a scrape has one deadline for its whole exchange, and only a few are
served at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import selectors
import shutil
import socket
import tempfile
import time
from time import perf_counter
from typing import TYPE_CHECKING, Any

from hasten.asgi import ASGIApplication, Message, Receive, Scope, Send
from hasten.binds import LOCALHOST, bind, describe, parse_host_port
from hasten.logs import error_logger

if TYPE_CHECKING:
    from hasten.server import Server

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_MAX_SCRAPE_REQUEST = 8192
_SCRAPE_BACKLOG = 16
_SAMPLE_INTERVAL = 1.0


def _import_prometheus() -> Any:
    try:
        # optional extra, imported on demand
        import prometheus_client  # noqa: PLC0415
        import prometheus_client.multiprocess  # noqa: PLC0415
    except ImportError:
        raise RuntimeError(
            "--metrics-bind needs prometheus_client: pip install 'hasten[metrics]'"
        ) from None
    return prometheus_client


class WorkerMetrics:
    """The metrics one worker process records."""

    def __init__(self) -> None:
        prometheus = _import_prometheus()
        self.requests = prometheus.Counter(
            "hasten_requests", "HTTP requests answered, by status.", ["status"], registry=None
        )
        self.duration = prometheus.Histogram(
            "hasten_request_duration_seconds",
            "Time from the request to the end of its response.",
            registry=None,
        )
        self.in_flight = prometheus.Gauge(
            "hasten_requests_in_flight",
            "Requests being handled.",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.open_connections = prometheus.Gauge(
            "hasten_open_connections",
            "Open client connections.",
            multiprocess_mode="livesum",
            registry=None,
        )

    def wrap(self, app: ASGIApplication) -> ASGIApplication:
        """``app`` with its HTTP requests counted and timed."""
        metrics = self

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = perf_counter()
            status = 500  # what the client gets when the app fails before answering

            async def send_and_note_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            metrics.in_flight.inc()
            try:
                await app(scope, receive, send_and_note_status)
            finally:
                metrics.in_flight.dec()
                metrics.requests.labels(str(status)).inc()
                metrics.duration.observe(perf_counter() - started)

        return measured

    async def sample_connections(self, server: Server) -> None:
        """Keep the open-connections gauge current while ``server`` runs."""
        while True:
            state = server.state
            self.open_connections.set(len(state.connections) if state is not None else 0)
            await asyncio.sleep(_SAMPLE_INTERVAL)


class Scrape:
    """One scrape connection: the request head read so far, then the answer left to send."""

    __slots__ = ("deadline", "head", "outgoing", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.head = b""
        self.outgoing: bytes | None = None


class MetricsEndpoint:
    """The supervisor's side: the multi-process directory, restarts, and the scrape socket.

    Scrapes are served with non-blocking I/O from the supervisor's own selector (no thread,
    since the supervisor forks): each event does a bounded amount of work, so no client can
    hold the loop that checks the workers' health.
    """

    def __init__(self, metrics_bind: str, *, timeout: float, limit: int) -> None:
        # One deadline for a whole scrape, from accept to the answer's last byte.
        self.timeout = timeout
        # Scrapes served at once; a connection beyond them is answered 503 and closed.
        self.limit = limit
        # Metrics tell an outsider about the service; without a host they stay on this machine.
        address = parse_host_port(metrics_bind, default_host=LOCALHOST)
        self.socket = bind(address, backlog=_SCRAPE_BACKLOG)
        self.directory = tempfile.mkdtemp(prefix="hasten-metrics-")
        self.scrapes: dict[socket.socket, Scrape] = {}
        self._selector: selectors.BaseSelector | None = None
        try:
            # prometheus_client picks multi-process storage when first imported, from this.
            os.environ[MULTIPROCESS_DIR_VARIABLE] = self.directory
            prometheus = self._prometheus = _import_prometheus()
        except BaseException:
            self.close()
            raise
        self._multiprocess: Any = prometheus.multiprocess
        self.registry = prometheus.CollectorRegistry()
        self._multiprocess.MultiProcessCollector(self.registry)
        self.restarts = prometheus.Counter(
            "hasten_worker_restarts",
            "Workers replaced, by reason: died, unresponsive or recycled.",
            ["reason"],
            registry=None,
        )
        error_logger.info("Metrics on %s/metrics", describe(self.socket))

    def attach(self, selector: selectors.BaseSelector) -> None:
        """Serve scrapes from ``selector``: its key's data is a callable taking the event mask."""
        self._selector = selector
        selector.register(self.socket, selectors.EVENT_READ, self._accept_waiting)

    def worker_exited(self, pid: int) -> None:
        """Drop a dead worker's live gauges (its counters still count)."""
        self._multiprocess.mark_process_dead(pid)

    def cut_overdue(self, now: float) -> None:
        """Close every scrape still unfinished at its deadline."""
        for scrape in [s for s in self.scrapes.values() if now >= s.deadline]:
            error_logger.debug("Metrics scrape cut: not done within %g s", self.timeout)
            self._finish(scrape)

    def _accept_waiting(self, _mask: int) -> None:
        assert self._selector is not None
        for _ in range(self.limit):
            try:
                client, _ = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                error_logger.debug("Metrics scrape not accepted: %s", exc)
                return
            client.setblocking(False)
            if len(self.scrapes) >= self.limit:
                with contextlib.suppress(OSError):
                    client.send(_BUSY)
                client.close()
                continue
            scrape = Scrape(client, time.monotonic() + self.timeout)
            self.scrapes[client] = scrape
            self._selector.register(
                client, selectors.EVENT_READ, functools.partial(self._on_event, scrape)
            )

    def _on_event(self, scrape: Scrape, _mask: int) -> None:
        try:
            if scrape.outgoing is None:
                self._read(scrape)
            else:
                self._write(scrape)
        except OSError as exc:
            error_logger.debug("Metrics scrape failed: %s", exc)
            self._finish(scrape)

    def _read(self, scrape: Scrape) -> None:
        chunk = scrape.sock.recv(4096)
        if not chunk:
            self._finish(scrape)
            return
        scrape.head += chunk
        if b"\r\n\r\n" not in scrape.head:
            if len(scrape.head) >= _MAX_SCRAPE_REQUEST:
                self._finish(scrape)
            return
        scrape.outgoing = self._answer(scrape.head)
        assert self._selector is not None
        self._selector.modify(
            scrape.sock, selectors.EVENT_WRITE, functools.partial(self._on_event, scrape)
        )
        self._write(scrape)

    def _write(self, scrape: Scrape) -> None:
        assert scrape.outgoing is not None
        sent = scrape.sock.send(scrape.outgoing)
        scrape.outgoing = scrape.outgoing[sent:]
        if not scrape.outgoing:
            self._finish(scrape)

    def _answer(self, head: bytes) -> bytes:
        """The response to a request head: the metrics on GET /metrics, else 404."""
        request_line = head.split(b"\r\n", 1)[0].split(b" ")
        if len(request_line) == 3 and request_line[1].split(b"?")[0] == b"/metrics":
            body: bytes = self._prometheus.generate_latest(self.registry)
            status = b"200 OK"
            content_type: bytes = self._prometheus.CONTENT_TYPE_LATEST.encode("latin-1")
        else:
            body, status, content_type = b"Not Found\n", b"404 Not Found", b"text/plain"
        return (
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: "
            + content_type
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )

    def _finish(self, scrape: Scrape) -> None:
        self.scrapes.pop(scrape.sock, None)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(scrape.sock)
        scrape.sock.close()

    def close_sockets(self) -> None:
        """Close the listening socket and every scrape (also what a forked worker does)."""
        self.socket.close()
        for sock in list(self.scrapes):
            sock.close()
        self.scrapes.clear()

    def close(self) -> None:
        self.close_sockets()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.directory)
