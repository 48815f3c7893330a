"""Which protocol serves a connection: ALPN on TLS (RFC 7301), the HTTP/2 preface on
cleartext (prior knowledge, RFC 9113 §3.3), or an ``Upgrade: h2c`` request (RFC 7540 §3.2)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import ssl
from collections.abc import Callable

from hasten.config import Config, settings_view
from hasten.logs import error_logger
from hasten.protocols.http1.connection import H1Connection, RequestCycle
from hasten.protocols.http2.connection import H2Connection
from hasten.protocols.http2.frames import FrameError
from hasten.protocols.http2.limits import H2Limits
from hasten.protocols.websocket.connection import WebSocketSettings
from hasten.protocols.websocket.handshake import upgrade_handler as websocket_upgrade_handler
from hasten.state import PrefaceHandler, Protocols, ServerState, UpgradeHandler
from hasten.tls import ALPNDispatch


def protocols_for(config: Config) -> Protocols:
    """What a connection may switch to, for ``--http`` and ``--ws``: built once, before the
    server's state, which holds it."""
    upgrades: dict[bytes, UpgradeHandler] = {}
    http2_preface: PrefaceHandler | None = None
    websocket: WebSocketSettings | None = None
    if config.http == "auto":
        limits = settings_view(H2Limits, config)
        http2_preface = functools.partial(_switch_to_prior_knowledge, limits)
        upgrades[b"h2c"] = functools.partial(_upgrade_to_h2c, limits)
    if config.ws != "none":
        websocket = settings_view(WebSocketSettings, config)
        upgrades[b"websocket"] = websocket_upgrade_handler(websocket)
    return Protocols(http2_preface=http2_preface, upgrades=upgrades, websocket=websocket)


def connection_factory(
    state: ServerState, config: Config, ssl_context: ssl.SSLContext | None
) -> Callable[[], asyncio.Protocol]:
    """The protocol factory of the listening sockets, for ``--http`` and TLS.

    ``auto`` serves HTTP/1.1 and HTTP/2 on the same port: ALPN on TLS, prior knowledge
    and ``Upgrade: h2c`` on cleartext (``state.protocols``, from :func:`protocols_for`).
    """
    limits = settings_view(H2Limits, config)
    if ssl_context is not None:
        choose = functools.partial(_protocol_for_alpn, state, limits, config.http)
        return functools.partial(ALPNDispatch, choose)
    if config.http == "h2":
        return functools.partial(H2Connection, state, limits)
    return functools.partial(H1Connection, state)


def _protocol_for_alpn(
    state: ServerState, limits: H2Limits, http_mode: str, alpn: str | None
) -> asyncio.Protocol:
    if alpn == "h2" or (alpn is None and http_mode == "h2"):
        return H2Connection(state, limits)
    return H1Connection(state)


def _switch_to_prior_knowledge(limits: H2Limits, conn: H1Connection, rest: bytes) -> None:
    conn.hand_over_to(H2Connection(conn.state, limits).take_over, rest)


def _upgrade_to_h2c(limits: H2Limits, conn: H1Connection, cycle: RequestCycle, rest: bytes) -> bool:
    """Accept ``Upgrade: h2c`` (RFC 7540 §3.2) when it is well-formed, else decline it and
    the request is answered over HTTP/1.1 (RFC 9110 §7.8 lets a server ignore Upgrade)."""
    scope = cycle.scope
    if scope["http_version"] != "1.1" or scope["scheme"] != "http":
        return False  # h2c is for cleartext HTTP/1.1 only
    if not conn.can_switch_protocols():
        return False
    settings_values = [value for name, value in scope["headers"] if name == b"http2-settings"]
    connection_options = b",".join(
        value for name, value in scope["headers"] if name == b"connection"
    ).lower()
    if len(settings_values) != 1 or b"http2-settings" not in connection_options:
        return False  # RFC 7540 §3.2.1: exactly one HTTP2-Settings, named in Connection
    settings_header = settings_values[0].strip()
    try:
        # RFC 7540 §3.2.1: a SETTINGS payload in base64url without padding.
        settings_payload = base64.b64decode(
            settings_header + b"=" * (-len(settings_header) % 4), altchars=b"-_", validate=True
        )
    except (binascii.Error, ValueError):
        return False
    body_length = 0
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return False
        if name == b"content-length":
            if not value.isdigit():
                return False
            body_length = int(value)
    # The body arrives in HTTP/1.1 framing, outside HTTP/2 flow control: only a body
    # that fits in one stream window is taken along.
    if body_length > limits.h2_initial_window_size:
        return False
    upgraded = H2Connection(conn.state, limits)
    try:
        upgraded.h2.initiate_upgrade_connection(settings_payload)
    except FrameError as exc:
        error_logger.debug("Ignoring h2c upgrade with bad HTTP2-Settings: %s", exc)
        return False
    conn.hand_over_to(functools.partial(upgraded.take_over_upgrade, cycle, body_length), rest)
    return True
