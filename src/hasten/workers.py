"""hasten inside gunicorn's process manager: ``gunicorn -k hasten.workers.HastenWorker main:app``.

gunicorn binds the sockets, forks the workers, watches their heartbeat and replaces them;
each worker runs one hasten :class:`~hasten.server.Server` on the sockets it inherited.
gunicorn's settings are mapped on to hasten's in :meth:`HastenWorker.hasten_settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from hasten.config import Config
from hasten.logs import access_logger, error_logger
from hasten.server import Server, loop_factory
from hasten.supervisors.child import RequestCounter


class HastenWorker(Worker):  # type: ignore[misc]  # gunicorn ships no type hints
    """A gunicorn worker that serves the app with hasten (uvloop when installed)."""

    # Settings a subclass may fix, e.g. ``{"loop": "asyncio"}`` for HastenAsyncioWorker.
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server: Server | None = None
        self._route_logs()

    def _route_logs(self) -> None:
        """Send hasten's loggers to gunicorn's error and access logs."""
        gunicorn_error = logging.getLogger("gunicorn.error")
        error_logger.handlers = list(gunicorn_error.handlers)
        error_logger.setLevel(gunicorn_error.level)
        error_logger.propagate = False
        if self.cfg.accesslog:
            gunicorn_access = logging.getLogger("gunicorn.access")
            access_logger.handlers = list(gunicorn_access.handlers)
            access_logger.setLevel(logging.INFO)
            access_logger.propagate = False

    def hasten_settings(self) -> dict[str, Any]:
        """gunicorn's configuration as hasten :class:`Config` keyword arguments."""
        cfg = self.cfg
        allowed = cfg.forwarded_allow_ips
        settings: dict[str, Any] = {
            "backlog": cfg.backlog,
            "timeout_keep_alive": float(cfg.keepalive),
            "timeout_graceful_shutdown": float(cfg.graceful_timeout),
            "access_log": bool(cfg.accesslog),
            "proxy_headers": True,
            "forwarded_allow_ips": allowed if isinstance(allowed, str) else ",".join(allowed),
            "log_level": logging.getLevelName(error_logger.getEffectiveLevel()).lower(),
        }
        # gunicorn's 0 means "no limit", which hasten does not offer: keep hasten's default.
        for name in ("limit_request_line", "limit_request_fields", "limit_request_field_size"):
            if getattr(cfg, name) > 0:
                settings[name] = getattr(cfg, name)
        if cfg.is_ssl:
            settings.update(
                ssl_certfile=cfg.certfile,
                ssl_keyfile=cfg.keyfile,
                ssl_ca_certs=cfg.ca_certs,
                ssl_cert_reqs=int(cfg.cert_reqs),
                ssl_ciphers=cfg.ciphers,
            )
        settings.update(self.CONFIG_KWARGS)
        return settings

    def init_signals(self) -> None:
        # gunicorn's handlers would run inside the event loop; hasten's Server installs its own
        # for SIGINT and SIGTERM (graceful stop) when it starts serving.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, lambda _sig, _frame: self.log.reopen_files())
        signal.signal(signal.SIGQUIT, self._quick_exit)
        signal.signal(signal.SIGABRT, self._quick_exit)

    def _quick_exit(self, _sig: int, _frame: object) -> None:
        self.alive = False
        if self.server is not None:
            self.server.force_exit = True
            self.server.should_exit = True

    def run(self) -> None:
        app = self.wsgi
        if self.cfg.max_requests > 0:
            app = RequestCounter(app, self.max_requests, self._max_requests_reached)
        config = Config(app=app, **self.hasten_settings())
        self.server = Server(config)
        with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
            runner.run(self._serve(self.server))
        if not self.server.started:
            # On this status the arbiter stops instead of respawning a worker that cannot boot.
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR)

    def _max_requests_reached(self) -> None:
        self.log.info("Autorestarting worker after current request.")
        self.alive = False
        if self.server is not None:
            self.server.should_exit = True

    async def _serve(self, server: Server) -> None:
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(server))
        try:
            await server.serve([listener.sock for listener in self.sockets])
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self, server: Server) -> None:
        """Tell the arbiter we are alive; stop when it is gone or asked us to stop."""
        interval = max(0.1, min(1.0, self.timeout / 4))
        while True:
            self.notify()
            if not self.alive or os.getppid() != self.ppid:
                server.should_exit = True
            await asyncio.sleep(interval)


class HastenAsyncioWorker(HastenWorker):
    """``HastenWorker`` on the standard asyncio event loop instead of uvloop."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "asyncio"}
