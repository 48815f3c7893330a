"""Prometheus metrics (``--metrics-bind HOST:PORT``, extra ``hasten[metrics]``).

Workers record into prometheus_client's multi-process files, in a directory the supervisor
creates; the supervisor answers scrapes with the sum over all workers, alive or gone, so the
numbers survive worker restarts. Served from the supervisor's own event loop (no thread),
one short scrape at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from time import perf_counter
from typing import TYPE_CHECKING, Any

from hasten.asgi import ASGIApplication, Message, Receive, Scope, Send
from hasten.logs import error_logger

if TYPE_CHECKING:
    from hasten.server import Server

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# A scrape must arrive in one go and quickly: the supervisor handles it in its own loop.
_SCRAPE_TIMEOUT = 1.0
_MAX_SCRAPE_REQUEST = 8192
_SAMPLE_INTERVAL = 1.0


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9100`` for IPv6) as a ``(host, port)`` pair, or ValueError."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"metrics_bind={bind!r} is not allowed; use HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


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


class MetricsEndpoint:
    """The supervisor's side: the multi-process directory, restarts, and the scrape socket."""

    def __init__(self, bind: str) -> None:
        host, port = parse_bind(bind)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.directory = tempfile.mkdtemp(prefix="hasten-metrics-")
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(16)
            self.socket.setblocking(False)
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
        bound = self.socket.getsockname()
        shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
        error_logger.info("Metrics on http://%s:%d/metrics", shown, bound[1])

    def worker_exited(self, pid: int) -> None:
        """Drop a dead worker's live gauges (its counters still count)."""
        self._multiprocess.mark_process_dead(pid)

    def answer_scrape(self) -> None:
        """Accept one connection and answer it: the metrics on GET /metrics, else 404."""
        try:
            client, _ = self.socket.accept()
        except BlockingIOError:
            return
        with client:
            client.settimeout(_SCRAPE_TIMEOUT)
            try:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < _MAX_SCRAPE_REQUEST:
                    chunk = client.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                request_line = head.split(b"\r\n", 1)[0].split(b" ")
                if len(request_line) == 3 and request_line[1].split(b"?")[0] == b"/metrics":
                    body = self._prometheus.generate_latest(self.registry)
                    status = b"200 OK"
                    content_type = self._prometheus.CONTENT_TYPE_LATEST.encode("latin-1")
                else:
                    body, status, content_type = b"Not Found\n", b"404 Not Found", b"text/plain"
                client.sendall(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\nContent-Type: "
                    + content_type
                    + b"\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )
            except OSError as exc:
                error_logger.debug("Metrics scrape failed: %s", exc)

    def close(self) -> None:
        self.socket.close()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.directory)
