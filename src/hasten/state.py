"""What every connection of one server shares: the app, settings it reads per request, and
the registries of open connections and running app tasks."""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Protocol

from hasten.asgi import ASGIApplication, encode_headers
from hasten.config import Config, settings_view
from hasten.logs import access_logger
from hasten.protocols.http1.checks import RequestLimits
from hasten.proxy import TrustedProxies

if TYPE_CHECKING:
    from hasten.protocols.http1.connection import H1Connection, RequestCycle
    from hasten.protocols.websocket.connection import WebSocketSettings

# Takes over a connection whose request asked to switch protocols (``Upgrade: <token>``):
# called with the connection, the request and the bytes after its head; returns False to
# decline, and the request is then answered over HTTP/1.1.
UpgradeHandler = Callable[["H1Connection", "RequestCycle", bytes], bool]
# Takes over a cleartext connection whose first bytes were the HTTP/2 preface: called with
# the connection and the bytes after the preface.
PrefaceHandler = Callable[["H1Connection", bytes], None]
# Whom a PROXY protocol header named for a connection (--proxy-protocol): the client, and
# the ASGI ``tls`` extension when the proxy says it terminated the client's TLS.
ProxiedOrigin = tuple[tuple[str, int], dict[str, Any] | None]
# Keyed by transport, or by its SSLObject on TLS: uvloop's TLS transports can't be weakly
# referenced, and the SSLObject lives exactly as long.
ProxiedOrigins = weakref.WeakKeyDictionary[object, ProxiedOrigin]


class ServedConnection(Protocol):
    """What the server needs of a connection, whichever protocol it speaks."""

    def shutdown(self) -> None: ...

    def close_if_idle_since_before(self, deadline: float) -> None: ...

    def abort(self) -> None: ...


class Protocols:
    """How a connection may change protocol, fixed before the server starts
    (``negotiation.protocols_for``): the handlers are called with the connection, which
    carries the ``ServerState``. The default is plain HTTP/1.1 with nothing to switch to."""

    __slots__ = ("http2_preface", "upgrades", "websocket")

    def __init__(
        self,
        *,
        http2_preface: PrefaceHandler | None = None,
        upgrades: dict[bytes, UpgradeHandler] | None = None,
        websocket: WebSocketSettings | None = None,
    ) -> None:
        # HTTP/2 with prior knowledge on a cleartext HTTP/1.1 port (RFC 9113 §3.3).
        self.http2_preface = http2_preface
        # By the first token of the request's ``Upgrade`` field, lower-cased.
        self.upgrades: dict[bytes, UpgradeHandler] = dict(upgrades or {})
        # Set when WebSockets are on (``--ws``); HTTP/2 then offers them too (RFC 8441).
        self.websocket = websocket


class ServerState:
    """Shared, per-server state read on the hot path: attributes, not lookups in a Config."""

    __slots__ = (
        "access_log",
        "app",
        "base_context",
        "connections",
        "date_header",
        "default_header_names",
        "default_headers",
        "lifespan_state",
        "limit_body_drain",
        "limit_concurrency",
        "limit_write_buffer",
        "loop",
        "protocols",
        "proxied_origins",
        "request_limits",
        "root_path",
        "shutting_down",
        "static_headers",
        "tasks",
        "timeout_keep_alive",
        "timeout_request_body",
        "timeout_request_header",
        "timeout_response_write",
        "trusted_proxies",
        "turn_end",
    )

    def __init__(
        self,
        config: Config,
        app: ASGIApplication,
        loop: asyncio.AbstractEventLoop,
        protocols: Protocols | None = None,
    ) -> None:
        self.app = app
        self.loop = loop
        self.protocols = Protocols() if protocols is None else protocols
        # App tasks run in a copy of this, never of the task that happened to start them.
        self.base_context = contextvars.copy_context()
        self.connections: set[ServedConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        # HTTP/1.1 connections with output held for the end of the loop turn (held-back
        # heads, complete responses): one loop callback per turn, not one per response.
        self.turn_end: list[H1Connection] = []
        self.lifespan_state: dict[str, Any] = {}
        self.root_path = config.root_path
        self.access_log = config.access_log and access_logger.isEnabledFor(20)
        self.timeout_keep_alive = config.timeout_keep_alive
        self.limit_concurrency = config.limit_concurrency
        self.request_limits = settings_view(RequestLimits, config)
        self.limit_write_buffer = config.limit_write_buffer
        self.limit_body_drain = config.limit_body_drain
        self.timeout_request_header = config.timeout_request_header
        self.timeout_request_body = config.timeout_request_body
        self.timeout_response_write = config.timeout_response_write
        self.trusted_proxies = (
            TrustedProxies(config.forwarded_allow_ips) if config.proxy_headers else None
        )
        self.proxied_origins: ProxiedOrigins | None = (
            weakref.WeakKeyDictionary() if config.proxy_protocol else None
        )
        self.shutting_down = False
        static: list[tuple[bytes, bytes]] = []
        if config.server_header:
            static.append((b"server", b"hasten"))
        static.extend(config.default_headers)
        self.static_headers = static
        self.date_header = config.date_header
        names = {name for name, _ in static}
        if config.date_header:
            names.add(b"date")
        self.default_header_names = frozenset(names)
        self.default_headers = b""
        self.refresh_date()

    def refresh_date(self) -> None:
        """Rebuild the default header block; called once a second so Date stays current."""
        self.default_headers = self.default_headers_except(frozenset())

    def default_headers_except(self, names: frozenset[bytes]) -> bytes:
        """The default header block without the headers the app chose to send itself."""
        pairs = [pair for pair in self.static_headers if pair[0] not in names]
        if self.date_header and b"date" not in names:
            pairs.insert(0, (b"date", formatdate(usegmt=True).encode("ascii")))
        return encode_headers(pairs)

    def over_capacity(self) -> bool:
        """Whether ``--limit-concurrency`` says the next request must get 503."""
        limit = self.limit_concurrency
        return limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit)
