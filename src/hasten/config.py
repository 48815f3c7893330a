"""Every hasten setting, with its default, type and help text, in one typed dataclass.

The command line, the environment, config files and docs/settings.md are all generated from
the fields of :class:`Config` (by way of :func:`setting_specs`), so a setting is declared
exactly once: here, with its bounds in its metadata and its choices in its ``Literal`` type.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from hasten.asgi import ASGIApplication, check_response_header
from hasten.binds import (
    Address,
    InheritedSocket,
    ListenAddress,
    TCPAddress,
    parse_address,
    parse_host_port,
    parse_mode,
    same_listener,
)
from hasten.logs import AccessLogFormat, configure_logging
from hasten.proxy import TrustedProxies
from hasten.proxy_protocol import V2_MAX_LENGTH, V2_MIN_LIMIT
from hasten.settings import SettingSpec, SettingValueError, setting, spec_for
from hasten.static import check_static_settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

LifespanMode = Literal["auto", "on", "off"]
LoopName = Literal["auto", "asyncio", "uvloop"]
HTTPMode = Literal["auto", "h1", "h2"]
WebSocketMode = Literal["auto", "none", "websockets"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
LogFormat = Literal["text", "json"]

View = TypeVar("View", bound="DataclassInstance")

LOG_LEVELS: dict[str, int] = {
    "critical": 50,
    "error": 40,
    "warning": 30,
    "info": 20,
    "debug": 10,
    "trace": 5,
}


@dataclass
class Config:
    """The settings of one hasten server.

    ``app`` is an ASGI application or an import string ``"module:attribute"``. Every other
    field has the same name as its command-line option (``timeout_keep_alive`` is
    ``--timeout-keep-alive``) and, where uvicorn has the setting, uvicorn's name.
    """

    app: ASGIApplication | str = field(metadata={"help": "The ASGI app, as module:attribute."})
    host: str = setting("127.0.0.1", "Bind the socket to this host.")
    port: int = setting(
        8000, "Bind the socket to this port; 0 picks a free port.", min=0, max=65535
    )
    uds: str | None = setting(None, "Bind to this Unix domain socket.", metavar="PATH")
    uds_mode: str = setting(
        "666",
        "Permissions of the --uds socket file, in octal; 666 lets every local user connect "
        "(tighten it to 660 or 600, above all with 'unix:' in --forwarded-allow-ips).",
        metavar="OCTAL",
    )
    fd: int | None = setting(None, "Serve on an already bound socket, by file descriptor.")
    bind: list[str] = setting(
        [],
        "Listen on this address: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N (:PORT is "
        "127.0.0.1); TLS when --ssl-certfile is set. Repeatable; replaces --host, --port, "
        "--uds and --fd, which may not be given with it.",
        metavar="ADDRESS",
    )
    insecure_bind: list[str] = setting(
        [],
        "Also listen on this address in plaintext, beside the TLS ones (http on port 80 next "
        "to https on 443); needs --ssl-certfile. Same forms as --bind. Repeatable.",
        metavar="ADDRESS",
    )
    backlog: int = setting(2048, "Maximum number of connections waiting to be accepted.", min=1)
    gc_threshold: int = setting(
        20000,
        "Allocations between runs of Python's youngest garbage-collector generation, set "
        "once the server starts (Python's own default is 700); 0 leaves it alone.",
        min=0,
    )
    app_dir: str = setting(".", "Look for the app module in this directory.", metavar="DIR")
    factory: bool = setting(
        False, "Treat APP as a factory: call it with no arguments to get the app."
    )
    lifespan: LifespanMode = setting("auto", "Run the ASGI lifespan protocol.")
    root_path: str = setting(
        "", "The path prefix the app is mounted under (scope['root_path']).", metavar="PATH"
    )
    loop: LoopName = setting("auto", "Event loop implementation.")
    log_level: LogLevel = setting("info", "Log level.")
    access_log: bool = setting(True, "Log one line per response (hasten.access).")
    access_log_format: str | None = setting(
        None,
        "Access-log line template with {client} {method} {path} {query} {http_version} "
        "{status} {bytes} {duration_ms} {request.NAME} {response.NAME} fields.",
        metavar="TEMPLATE",
    )
    log_format: LogFormat = setting("text", "Log lines as text or as one JSON object per line.")
    log_config: str | None = setting(
        None,
        "Configure logging from this file: dictConfig as JSON or YAML, or an INI file.",
        metavar="PATH",
    )
    use_colors: bool | None = setting(
        None, "Colour log levels (default: only when logging to a terminal)."
    )
    server_header: bool = setting(True, "Send a 'Server: hasten' header.")
    date_header: bool = setting(True, "Send a 'Date' header.")
    headers: list[str] = setting(
        [],
        "Add a default response header, NAME:VALUE. Repeatable.",
        metavar="NAME:VALUE",
        option="header",
    )
    limit_concurrency: int | None = setting(
        None, "Answer 503 once this many connections or requests are open.", min=1
    )
    timeout_keep_alive: float = setting(
        5.0, "Close a keep-alive connection idle for this many seconds.", min=0
    )
    timeout_graceful_shutdown: float | None = setting(
        None, "On shutdown, wait at most this many seconds for requests to finish.", min=0
    )
    limit_request_line: int = setting(
        8190, "HTTP/1.1: longest request target, in bytes; a longer one gets 414.", min=1
    )
    limit_request_fields: int = setting(
        100,
        "HTTP/1.1: most header fields in a request head, or trailer fields; more get 431.",
        min=1,
    )
    limit_request_field_size: int = setting(
        8190,
        "HTTP/1.1: largest header or trailer field (name and value), in bytes; larger gets 431.",
        min=1,
    )
    limit_request_headers_size: int = setting(
        65536,
        "HTTP/1.1: largest request head (target and all fields), or trailer section, in bytes; "
        "larger gets 431.",
        min=1,
    )
    limit_request_body: int | None = setting(
        None,
        "Largest request body, in bytes (none: unlimited); a larger Content-Length gets 413 "
        "before the body is read, a chunked body 413 once it grows past it.",
        min=1,
    )
    limit_pipelined_requests: int = setting(
        128,
        "HTTP/1.1: requests a client may pipeline ahead of the one being answered; more get "
        "429 and the connection closes.",
        min=1,
    )
    limit_body_drain: int = setting(
        1048576,
        "HTTP/1.1: when the app answers before reading the whole request body, read and drop "
        "at most this many more body bytes to keep the connection; beyond that it closes.",
    )
    limit_write_buffer: int = setting(
        65536,
        "Response bytes buffered for a slow client before the app's send() waits (the "
        "write high-water mark).",
        min=1,
    )
    timeout_request_header: float = setting(
        30.0,
        "HTTP/1.1: answer 408 and close when a request head (or a chunked body's trailer "
        "section) is not complete this many seconds after it began (slowloris); the clock is "
        "not reset by each byte.",
        above=0,
    )
    timeout_request_body: float = setting(
        60.0,
        "HTTP/1.1: answer 408 (or close) when a request body the server is reading makes no "
        "progress for this many seconds.",
        above=0,
    )
    timeout_response_write: float = setting(
        60.0,
        "Close the connection when the client has taken none of the response for this many "
        "seconds while the app waits to send more (a client that never reads): HTTP/1.1, "
        "HTTP/2 and WebSockets over either.",
        above=0,
    )
    proxy_headers: bool = setting(
        False,
        "Trust X-Forwarded-For, -Proto, -Host and -Port, or else RFC 7239 Forwarded, from "
        "--forwarded-allow-ips peers (see docs/security.md).",
    )
    forwarded_allow_ips: str = setting(
        "127.0.0.1",
        "Comma-separated IPs, CIDRs, 'unix:' or '*' trusted to send proxy headers and PROXY "
        "protocol headers.",
        env="FORWARDED_ALLOW_IPS",
    )
    proxy_protocol: bool = setting(
        False,
        "Expect a PROXY protocol v1 or v2 header (HAProxy, AWS NLB, Envoy) before anything "
        "else on every connection, TLS included, from --forwarded-allow-ips peers only; a "
        "connection without a valid one is closed.",
    )
    timeout_proxy_protocol: float = setting(
        5.0,
        "Close a connection whose PROXY protocol header is not complete in this many seconds.",
        above=0,
    )
    limit_proxy_protocol_header: int = setting(
        4096,
        "Largest PROXY protocol v2 header, TLVs included, in bytes; a larger one closes the "
        "connection. v1 headers are at most 107 bytes.",
        min=V2_MIN_LIMIT,
        max=V2_MAX_LENGTH,
    )

    env_file: str | None = setting(
        None,
        "Load environment variables for the app from this file of KEY=VALUE lines.",
        metavar="PATH",
    )
    workers: int = setting(
        1, "Number of worker processes sharing the sockets.", env="WEB_CONCURRENCY", min=1
    )
    reuse_port: bool = setting(
        False,
        "Give each worker its own SO_REUSEPORT socket so the kernel spreads connections.",
    )
    timeout_worker_healthcheck: float = setting(
        5.0, "Replace a worker whose event loop has not answered for this many seconds.", above=0
    )
    limit_max_requests: int | None = setting(
        None, "Recycle a worker gracefully after it has served this many requests.", min=1
    )
    limit_max_requests_jitter: int = setting(
        0, "Add a random 0..N to --limit-max-requests per worker, so workers recycle apart.", min=0
    )
    limit_max_memory: float | None = setting(
        None,
        "Recycle a worker gracefully once its resident memory exceeds this many MiB.",
        metavar="MIB",
        above=0,
    )
    metrics_bind: str | None = setting(
        None,
        "Serve Prometheus metrics, summed over the workers, on HOST:PORT/metrics; :PORT "
        "listens on 127.0.0.1 only (needs hasten[metrics]).",
        metavar="HOST:PORT",
    )
    timeout_metrics_scrape: float = setting(
        5.0,
        "Close a metrics scrape not done this many seconds after it was accepted, whatever "
        "its client does meanwhile (a trickled request, an answer it never reads).",
        above=0,
    )
    limit_metrics_scrapes: int = setting(
        8,
        "Metrics scrapes served at once; a connection beyond them is answered 503 and closed.",
        min=1,
    )
    reload: bool = setting(False, "Restart the server when a watched file changes (development).")
    reload_dir: list[str] = setting(
        [],
        "Watch this directory for --reload (default: the working directory). Repeatable.",
        metavar="DIR",
    )
    reload_include: list[str] = setting(
        [],
        "Glob of file names that trigger a reload (default: *.py). Repeatable.",
        metavar="GLOB",
    )
    reload_exclude: list[str] = setting(
        [],
        "Glob of file names or directories that never trigger a reload. Repeatable.",
        metavar="GLOB",
    )
    reload_delay: float = setting(
        0.25, "Wait this many seconds for more changes before reloading.", min=0
    )

    ssl_certfile: str | None = setting(
        None, "Serve TLS with this certificate chain (PEM); enables https.", metavar="PATH"
    )
    ssl_keyfile: str | None = setting(
        None, "The private key of --ssl-certfile (PEM), if not in that file.", metavar="PATH"
    )
    ssl_keyfile_password: str | None = setting(
        None,
        "Password of an encrypted --ssl-keyfile; give it by environment or config file, since "
        "a command line is visible to every local user.",
        secret=True,
    )
    ssl_ca_certs: str | None = setting(
        None, "CA certificates (PEM) that client certificates are verified against.", metavar="PATH"
    )
    ssl_cert_reqs: int = setting(
        0,
        "Client certificates: 0 not asked, 1 optional, 2 required (ssl.CERT_* values).",
        min=0,
        max=2,
    )
    ssl_ciphers: str | None = setting(
        None, "OpenSSL cipher list for TLS 1.2 (default: OpenSSL's own)."
    )
    ssl_handshake_timeout: float = setting(
        10.0,
        "Close a connection that has not completed its TLS handshake in this many seconds.",
        above=0,
    )
    http: HTTPMode = setting(
        "auto",
        "HTTP versions offered: auto (HTTP/1.1 and HTTP/2), h1 or h2 (that one only).",
    )
    # RFC 9113 §6.5.2 bounds the first three h2_* settings.
    h2_max_concurrent_streams: int = setting(
        100,
        "HTTP/2: streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).",
        min=1,
        max=2**31 - 1,
    )
    h2_initial_window_size: int = setting(
        65535,
        "HTTP/2: request body bytes buffered per stream (SETTINGS_INITIAL_WINDOW_SIZE).",
        min=1,
        max=2**31 - 1,
    )
    h2_max_frame_size: int = setting(
        16384,
        "HTTP/2: largest frame payload accepted (SETTINGS_MAX_FRAME_SIZE).",
        min=2**14,
        max=2**24 - 1,
    )
    h2_max_header_list_size: int = setting(
        65536, "HTTP/2: largest decoded request header list, in bytes (HPACK bomb guard).", min=1
    )
    h2_max_reset_streams: int = setting(
        200,
        "HTTP/2: streams a connection may reset, or make the server reset, in a burst (refilled "
        "at a tenth of this per second); beyond it GOAWAY (rapid reset, CVE-2023-44487).",
        min=1,
    )
    h2_max_control_frames: int = setting(
        1000,
        "HTTP/2: PING, SETTINGS, PRIORITY, WINDOW_UPDATE, empty DATA and unknown frames, and "
        "frames on closed streams, a connection may send in a burst (refilled at a tenth of "
        "this per second, and by response data sent); beyond it GOAWAY "
        "(CVE-2019-9512/9515/9518).",
        min=1,
    )
    h2_timeout_stalled_stream: float = setting(
        30.0,
        "HTTP/2: reset a stream whose request body the app waits for, or whose response waits "
        "for flow-control window, with no progress for this many seconds.",
        above=0,
    )
    ws: WebSocketMode = setting(
        "auto",
        "WebSocket support: auto or websockets (RFC 6455 on the websockets library, over "
        "HTTP/1.1 and, by extended CONNECT, HTTP/2: RFC 8441), or none.",
    )
    ws_max_size: int = setting(
        16 * 1024 * 1024,
        "WebSocket: largest incoming message, in bytes (after decompression); a larger one "
        "closes the connection with 1009.",
        min=1,
    )
    ws_max_queue: int = setting(
        32,
        "WebSocket: incoming messages queued for the app before the socket stops being read "
        "(over HTTP/2: before the stream's flow-control window stops reopening).",
        min=1,
    )
    ws_max_queue_bytes: int = setting(
        1024 * 1024,
        "WebSocket: bytes of incoming messages queued for the app before the socket stops "
        "being read and decompressed (one message larger than this is still taken, alone).",
        min=1,
    )
    ws_max_fragments: int = setting(
        131072,
        "WebSocket: most frames one message may come in; more close the connection with 1009 "
        "(each fragment is kept until the message ends, and empty ones cost no size).",
        min=1,
    )
    ws_ping_interval: float | None = setting(
        20.0, "WebSocket: send a ping every this many seconds (none: never).", above=0
    )
    ws_ping_timeout: float | None = setting(
        20.0,
        "WebSocket: close the connection when a ping gets no pong, or the peer does not answer "
        "a close frame, within this many seconds (none: wait forever).",
        above=0,
    )
    ws_per_message_deflate: bool = setting(
        True, "WebSocket: offer permessage-deflate compression (RFC 7692)."
    )
    # Static files served by hasten itself (hasten.static), under granian's option names.
    static_path_route: list[str] = setting(
        ["/static"],
        "URL path under which the matching --static-path-mount is served (paired by order). "
        "Repeatable.",
        metavar="PATH",
    )
    static_path_mount: list[str] = setting(
        [],
        "Serve the files of this directory under the matching --static-path-route; no mount, "
        "no static files. Repeatable.",
        metavar="DIR",
    )
    static_path_dir_to_file: str | None = setting(
        None,
        "Answer a request for a directory under a static route with this file in it "
        "(e.g. index.html); without it a directory is 404.",
        metavar="FILE",
    )
    static_path_expires: int = setting(
        86400,
        "Static files: Cache-Control max-age and Expires, in seconds; 0 sends neither.",
        min=0,
        metavar="SECONDS",
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``SettingValueError`` naming the first setting whose value is not allowed."""
        for spec in setting_specs().values():
            spec.check(getattr(self, spec.name))
        if self.access_log_format is not None:
            try:
                AccessLogFormat(self.access_log_format)
            except ValueError as exc:  # names the unknown field
                raise SettingValueError("access_log_format", str(exc)) from None
        if self.metrics_bind is not None:
            try:
                parse_host_port(self.metrics_bind)
            except ValueError as exc:
                raise self._not_allowed("metrics_bind", str(exc)) from None
        try:
            TrustedProxies(self.forwarded_allow_ips)
        except ValueError as exc:
            raise self._not_allowed("forwarded_allow_ips", str(exc), sep=":") from None
        self._validate_headers()
        if parse_mode(self.uds_mode) is None:
            raise self._not_allowed("uds_mode", "use octal permission bits, e.g. 660")
        self._validate_binds()
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise self._not_allowed("root_path", "it must start with '/' and not end with '/'")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise SettingValueError("ssl_keyfile", "ssl_keyfile needs ssl_certfile")
        check_static_settings(
            self.static_path_route, self.static_path_mount, self.static_path_dir_to_file
        )

    def _not_allowed(self, name: str, reason: str, *, sep: str = ";") -> SettingValueError:
        return SettingValueError(
            name, f"{name}={getattr(self, name)!r} is not allowed{sep} {reason}"
        )

    def _validate_headers(self) -> None:
        for header in self.headers:
            name, sep, value = header.partition(":")
            if not sep or not name.strip():
                raise SettingValueError("headers", f"headers: {header!r} is not NAME:VALUE")
            try:
                # The check every response header an app sends gets: CR or LF would let the
                # value end the header line and start another (response splitting).
                check_response_header(
                    name.strip().encode("latin-1"), value.strip(" \t").encode("latin-1")
                )
            except (RuntimeError, UnicodeEncodeError) as exc:
                raise SettingValueError(
                    "headers", f"headers: {header!r} is not allowed: {exc}"
                ) from None

    def _validate_binds(self) -> None:
        parsed: dict[str, list[Address]] = {}
        for name in ("bind", "insecure_bind"):
            try:
                parsed[name] = [self._parse_bind(text) for text in getattr(self, name)]
            except ValueError as exc:
                raise SettingValueError(name, f"{name}: {exc}") from None
        given = self._single_listener_settings()
        if self.bind and given:
            # Both ways of naming where to listen at once leave it unclear whether the user
            # meant one socket or both: say how to write it as a bind instead of guessing.
            name, equivalent = given[0]
            raise SettingValueError(
                name,
                f"{name}={getattr(self, name)!r} cannot be combined with bind; give every "
                f"address as a bind instead (here: {equivalent!r})",
                also=("bind",),
            )
        if self.insecure_bind and self.ssl_certfile is None:
            raise SettingValueError(
                "insecure_bind",
                "insecure_bind needs ssl_certfile: without TLS every bind is plaintext already",
            )
        # SO_REUSEPORT would let the same address be bound twice without an error.
        seen = [] if self.bind else [self.listen_addresses[0].address]
        for name, addresses in parsed.items():
            for text, address in zip(getattr(self, name), addresses, strict=True):
                if any(same_listener(address, earlier) for earlier in seen):
                    raise SettingValueError(
                        name, f"{name}: {text!r} is the same address as another listener"
                    )
                seen.append(address)

    def _single_listener_settings(self) -> list[tuple[str, str]]:
        """The --fd, --uds, --host and --port settings given, each with its bind form."""
        given = []
        if self.fd is not None:
            given.append(("fd", f"fd://{self.fd}"))
        if self.uds is not None:
            given.append(("uds", f"unix:{self.uds}"))
        specs = setting_specs()
        host = f"[{self.host}]" if ":" in self.host else self.host
        for name in ("host", "port"):
            if getattr(self, name) != specs[name].default:
                given.append((name, f"{host}:{self.port}"))
        return given

    def _parse_bind(self, text: str) -> Address:
        """One --bind address, or ValueError saying what it is and the forms allowed."""
        mode = parse_mode(self.uds_mode)
        assert mode is not None  # validate() refused any other first
        try:
            # "a, b" in HASTEN_BIND leaves the blank with the item; it is no part of an address.
            return parse_address(text.strip(), uds_mode=mode)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not allowed; {exc}") from None

    @property
    def listen_addresses(self) -> list[ListenAddress]:
        """Where the server listens: every ``--bind`` (else ``--fd``, else ``--uds``, else
        ``--host``/``--port``), then every ``--insecure-bind``."""
        insecure = [ListenAddress(self._parse_bind(t), insecure=True) for t in self.insecure_bind]
        if self.bind:
            return [ListenAddress(self._parse_bind(text)) for text in self.bind] + insecure
        if self.fd is not None:
            return [ListenAddress(InheritedSocket(self.fd)), *insecure]
        if self.uds is not None:
            return [ListenAddress(self._parse_bind(f"unix:{self.uds}")), *insecure]
        return [ListenAddress(TCPAddress(self.host, self.port)), *insecure]

    def configure_logging(self) -> None:
        """Set up hasten's loggers as the logging settings ask."""
        configure_logging(
            self.log_level_number,
            log_format=self.log_format,
            use_colors=self.use_colors,
            access_log_format=self.access_log_format,
            log_config=self.log_config,
        )

    @property
    def log_level_number(self) -> int:
        return LOG_LEVELS[self.log_level]

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """``--header`` values as encoded ``(lower-case name, value)`` pairs."""
        pairs = []
        for header in self.headers:
            name, _, value = header.partition(":")
            pairs.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
        return pairs


@functools.cache
def setting_specs() -> dict[str, SettingSpec]:
    """Every setting by name, in the order ``Config`` declares them."""
    hints = typing.get_type_hints(Config)
    return {item.name: spec_for(item, hints[item.name]) for item in dataclasses.fields(Config)}


def settings_view(view: type[View], config: Config) -> View:
    """``view`` (a dataclass whose fields are named after settings) filled from ``config``.

    A protocol reads the settings it needs once per server into such a view; the view's
    fields keep the settings' own names, so a limit is called the same everywhere.
    """
    return view(**{item.name: getattr(config, item.name) for item in dataclasses.fields(view)})
