"""``Server``: bind or adopt sockets, serve connections, and shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from hasten.binds import ListeningSocket, UnixAddress, UnixSocketFile, bind_listening, describe
from hasten.config import Config
from hasten.importer import load_app
from hasten.lifespan import Lifespan
from hasten.listener import Listener
from hasten.logs import error_logger
from hasten.protocols.negotiation import connection_factory, protocols_for
from hasten.proxy import TrustedProxies
from hasten.proxy_protocol_gate import ProxyProtocolGate
from hasten.state import ServerState
from hasten.static import StaticFiles, StaticFilesApp
from hasten.tls import create_ssl_context

STARTUP_FAILURE = 3
_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How often a shutting-down server looks whether every connection and task has finished.
_DRAIN_POLL_INTERVAL = 0.02


class Server:
    """One hasten server process: ``await server.serve()`` runs it until it is told to stop.

    Setting ``should_exit`` (from any thread, or by SIGINT/SIGTERM) starts a graceful
    shutdown; a second SIGINT, or setting ``force_exit``, cuts it short. ``started`` turns
    true once the sockets listen (``servers`` then holds them); ``exit_code`` is the process
    status the run ended with (3: the app's startup failed or the socket could not be bound).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = False
        self.force_exit = False
        self.exit_code = 0
        self.state: ServerState | None = None
        self.servers: list[Listener] = []
        self._should_exit = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_event: asyncio.Event | None = None
        self._socket_files: list[UnixSocketFile] = []
        self._serve_task: asyncio.Task[None] | None = None

    @property
    def should_exit(self) -> bool:
        """Whether the server has been asked to stop."""
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value:
            self._wake()

    def _wake(self) -> None:
        loop, event = self._loop, self._exit_event
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    def run(self, sockets: Sequence[socket.socket | ListeningSocket] | None = None) -> None:
        """Run the server in a new event loop until it stops (blocking)."""
        with asyncio.Runner(loop_factory=loop_factory(self.config.loop)) as runner:
            runner.run(self.serve(sockets))

    async def serve(self, sockets: Sequence[socket.socket | ListeningSocket] | None = None) -> None:
        """Serve until ``should_exit``; ``sockets`` are already-listening sockets to adopt
        (a plain socket serves TLS when the server has a certificate)."""
        self._loop = asyncio.get_running_loop()
        self._exit_event = asyncio.Event()
        if self._should_exit:
            self._exit_event.set()
        error_logger.info("Started server process [%d]", os.getpid())
        self._serve_task = asyncio.current_task()
        with self._signal_handlers():
            try:
                await self._serve(sockets)
            except asyncio.CancelledError:
                if not (self.force_exit and self._serve_task is not None):
                    raise
                # A forced exit while the app's startup hangs: see handle_exit.
                self._serve_task.uncancel()
                error_logger.warning("Startup interrupted; exiting.")
        error_logger.info("Finished server process [%d]", os.getpid())

    async def _serve(self, sockets: Sequence[socket.socket | ListeningSocket] | None) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        app = load_app(config.app, factory=config.factory, app_dir=config.app_dir)
        if config.static_path_mount:
            # Only when configured: without mounts no request pays for a wrapper.
            app = StaticFilesApp(app, StaticFiles.from_config(config))
        lifespan = Lifespan(app, config.lifespan)
        await lifespan.startup()
        if lifespan.startup_failed:
            self.exit_code = STARTUP_FAILURE
            return
        state = self.state = ServerState(config, app, loop, protocols_for(config))
        state.lifespan_state = lifespan.state
        if config.gc_threshold:
            # With many connections open, each request's few dicts, lists and tasks trip
            # Python's default threshold every handful of requests, and every run walks the
            # objects of all the requests in flight. Request objects die by reference
            # counting; the collector is only for cycles, which can wait a little longer.
            gc.set_threshold(config.gc_threshold)
        try:
            self._start_listening(state, sockets)
        except OSError as exc:
            error_logger.error("Could not listen: %s", exc)
            self.exit_code = STARTUP_FAILURE
            await lifespan.shutdown()
            return
        self.started = True
        await self._main_loop(state)
        await self._shutdown(state)
        self._remove_socket_files()
        if not self.force_exit:
            await lifespan.shutdown()

    def _start_listening(
        self, state: ServerState, sockets: Sequence[socket.socket | ListeningSocket] | None
    ) -> None:
        config = self.config
        loop = state.loop
        ssl_context = create_ssl_context(config)
        proxy_protocol = None
        if state.proxied_origins is not None:
            proxy_protocol = ProxyProtocolGate(
                loop,
                TrustedProxies(config.forwarded_allow_ips),
                state.proxied_origins,
                timeout=config.timeout_proxy_protocol,
                max_length=config.limit_proxy_protocol_header,
            )
        if sockets:
            adopted = [s if isinstance(s, ListeningSocket) else ListeningSocket(s) for s in sockets]
        else:
            addresses = config.listen_addresses
            adopted = bind_listening(
                addresses, backlog=config.backlog, reuse_port=config.reuse_port
            )
            self._socket_files = [
                UnixSocketFile.at(item.address.path)
                for item in addresses
                if isinstance(item.address, UnixAddress)
            ]
        # TLS listeners start with ALPN, plaintext ones with HTTP/1.1 or the HTTP/2 preface.
        factories = {
            context: connection_factory(state, config, context)
            for context in {None if item.insecure else ssl_context for item in adopted}
        }
        for item in adopted:
            context = None if item.insecure else ssl_context
            listener = Listener(
                loop,
                item.sock,
                factories[context],
                ssl_context=context,
                ssl_handshake_timeout=config.ssl_handshake_timeout,
                proxy_protocol=proxy_protocol,
            )
            listener.start()
            self.servers.append(listener)
            scheme = "http" if context is None else "https"
            error_logger.info(
                "Listening on %s (Press CTRL+C to quit)", describe(item.sock, scheme=scheme)
            )

    async def _main_loop(self, state: ServerState) -> None:
        assert self._exit_event is not None
        interval = self._tick_interval()
        while not self._should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_event.wait(), interval)
            self._tick(state)

    def _tick_interval(self) -> float:
        # The tick refreshes the Date header and closes idle keep-alive connections: one
        # timer for the whole server instead of one per connection.
        # It also enforces the request read timeouts, so it ticks often enough for the shortest.
        shortest = min(
            self.config.timeout_keep_alive,
            self.config.timeout_request_header,
            self.config.timeout_request_body,
            self.config.timeout_response_write,
        )
        return min(1.0, max(0.05, shortest / 4))

    def _tick(self, state: ServerState) -> None:
        state.refresh_date()
        deadline = state.loop.time() - self.config.timeout_keep_alive
        for conn in list(state.connections):
            conn.close_if_idle_since_before(deadline)

    async def _shutdown(self, state: ServerState) -> None:
        error_logger.info("Shutting down")
        state.shutting_down = True
        for server in self.servers:
            server.close()
        for conn in list(state.connections):
            conn.shutdown()
        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else state.loop.time() + timeout
        if state.connections or state.tasks:
            error_logger.info("Waiting for connections to close. (CTRL+C to force quit)")
        interval = self._tick_interval()
        next_tick = state.loop.time() + interval
        while (state.connections or state.tasks) and not self.force_exit:
            if deadline is not None and state.loop.time() >= deadline:
                error_logger.warning(
                    "Graceful shutdown timed out; cancelling %d request(s).",
                    len(state.tasks),
                )
                break
            await asyncio.sleep(_DRAIN_POLL_INTERVAL)
            if state.loop.time() >= next_tick:
                # The timeouts hold while draining too: a client that stopped reading would
                # otherwise keep a shutdown without timeout_graceful_shutdown going forever.
                next_tick = state.loop.time() + interval
                self._tick(state)
        for task in list(state.tasks):
            task.cancel()
        for conn in list(state.connections):
            conn.abort()
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=1.0)

    def _remove_socket_files(self) -> None:
        # The socket files this server created would otherwise outlive it; an adopted socket
        # (``--fd``, a supervisor's) belongs to whoever bound it.
        for socket_file in self._socket_files:
            socket_file.remove_if_unchanged()

    def handle_exit(self, sig: int, frame: FrameType | None = None) -> None:
        """Signal handler: the first signal asks for a graceful exit, the next forces it."""
        if self._should_exit and sig == signal.SIGINT:
            self.force_exit = True
            if not self.started and self._serve_task is not None:
                # Startup (the app's lifespan) is stuck; nothing else would notice.
                self._serve_task.cancel()
        elif not self.started:
            error_logger.info("Stopping once startup completes. (CTRL+C again to force quit)")
        self.should_exit = True

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            # Embedded in a thread: the host program owns signals.
            yield
            return
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        try:
            for sig in _HANDLED_SIGNALS:
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
                installed.append(sig)
        except NotImplementedError:  # pragma: no cover - Windows
            for sig in _HANDLED_SIGNALS:
                signal.signal(sig, self.handle_exit)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for ``--loop`` (``auto`` prefers uvloop when installed)."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop  # noqa: PLC0415 -- optional dependency
        except ImportError:
            if name == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop
