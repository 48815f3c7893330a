"""The ASGI lifespan protocol: startup before serving, shutdown after draining."""

from __future__ import annotations

import asyncio
from typing import Any

from hasten.asgi import LIFESPAN_ASGI_VERSION, ASGIApplication, LifespanScope, Message
from hasten.config import LifespanMode
from hasten.logs import error_logger


class Lifespan:
    """Runs one app's lifespan task and reports whether startup and shutdown succeeded.

    In ``auto`` mode an app that raises before answering ``lifespan.startup`` is taken not to
    support the protocol, and serving goes on; in ``on`` mode that is a startup failure.
    """

    def __init__(self, app: ASGIApplication, mode: LifespanMode) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.startup_failed = False
        self.shutdown_failed = False
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsupported = False
        self._errored = False

    async def startup(self) -> None:
        """Run the app's startup; sets ``startup_failed`` if it failed."""
        if self.mode == "off":
            return
        error_logger.info("Waiting for application startup.")
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self.startup_failed or (self._errored and self.mode == "on"):
            self.startup_failed = True
            error_logger.error("Application startup failed. Exiting.")
        elif not self._unsupported:
            error_logger.info("Application startup complete.")

    async def shutdown(self) -> None:
        """Run the app's shutdown; sets ``shutdown_failed`` if it failed."""
        if self.mode == "off" or self._unsupported or self._errored or self._task is None:
            return
        error_logger.info("Waiting for application shutdown.")
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._shutdown_done.wait()
        if self.shutdown_failed or self._errored:
            error_logger.error("Application shutdown failed. Exiting.")
        else:
            error_logger.info("Application shutdown complete.")

    async def _run(self) -> None:
        scope: LifespanScope = {
            "type": "lifespan",
            "asgi": dict(LIFESPAN_ASGI_VERSION),  # type: ignore[typeddict-item]
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            # The server is going away without a lifespan shutdown (a forced exit).
            raise
        except BaseException as exc:
            self._errored = True
            if self.mode == "auto" and not self._startup_done.is_set():
                self._unsupported = True
                error_logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                error_logger.error("Exception in 'lifespan' protocol", exc_info=exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            if self._startup_done.is_set():
                raise RuntimeError("lifespan.startup.complete sent after startup ended")
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            if self._startup_done.is_set():
                raise RuntimeError("lifespan.startup.failed sent after startup ended")
            self.startup_failed = True
            self._log_failure_message(message)
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            if not self._startup_done.is_set() or self._shutdown_done.is_set():
                raise RuntimeError("lifespan.shutdown.complete sent out of order")
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            if not self._startup_done.is_set() or self._shutdown_done.is_set():
                raise RuntimeError("lifespan.shutdown.failed sent out of order")
            self.shutdown_failed = True
            self._log_failure_message(message)
            self._shutdown_done.set()
        else:
            raise RuntimeError(f"Unexpected lifespan message type {kind!r}")

    @staticmethod
    def _log_failure_message(message: Message) -> None:
        text = message.get("message")
        if text:
            error_logger.error("%s", text)
