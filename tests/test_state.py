"""ServerState: the default header block, the concurrency limit, the protocol wiring."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from hasten import Config
from hasten.protocols.negotiation import protocols_for
from hasten.state import ServerState


async def app(scope: Any, receive: Any, send: Any) -> None:
    return None


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def make_state(loop: asyncio.AbstractEventLoop, **settings: Any) -> ServerState:
    return ServerState(Config(app=app, **settings), app, loop)


def test_default_headers_have_date_then_server(loop: asyncio.AbstractEventLoop) -> None:
    block = make_state(loop).default_headers
    lines = block.split(b"\r\n")
    assert lines[0].startswith(b"date: ") and lines[0].endswith(b" GMT")
    assert lines[1] == b"server: hasten"
    assert block.endswith(b"\r\n")


def test_default_headers_include_configured_headers(loop: asyncio.AbstractEventLoop) -> None:
    block = make_state(loop, headers=["X-A:1"], date_header=False).default_headers
    assert block == b"server: hasten\r\nx-a: 1\r\n"


def test_no_default_headers_when_disabled(loop: asyncio.AbstractEventLoop) -> None:
    assert make_state(loop, date_header=False, server_header=False).default_headers == b""


def test_default_headers_except_drops_the_app_overridden_names(
    loop: asyncio.AbstractEventLoop,
) -> None:
    state = make_state(loop, headers=["X-A:1"])
    block = state.default_headers_except(frozenset({b"date", b"server"}))
    assert block == b"x-a: 1\r\n"
    assert state.default_header_names == frozenset({b"date", b"server", b"x-a"})


def test_over_capacity_only_with_a_limit(loop: asyncio.AbstractEventLoop) -> None:
    state = make_state(loop)
    state.connections.update(object() for _ in range(1000))  # type: ignore[misc]
    assert not state.over_capacity()


def test_over_capacity_counts_connections_and_tasks(loop: asyncio.AbstractEventLoop) -> None:
    state = make_state(loop, limit_concurrency=2)
    state.connections.update([object(), object()])  # type: ignore[list-item]
    assert not state.over_capacity()
    state.connections.add(object())  # type: ignore[arg-type]
    assert state.over_capacity()
    state.connections.clear()
    state.tasks.update([object(), object()])  # type: ignore[list-item]
    assert state.over_capacity()


def test_lifespan_state_starts_empty(loop: asyncio.AbstractEventLoop) -> None:
    assert make_state(loop).lifespan_state == {}


def test_protocols_default_to_plain_http1(loop: asyncio.AbstractEventLoop) -> None:
    protocols = make_state(loop).protocols
    assert protocols.http2_preface is None
    assert protocols.upgrades == {}
    assert protocols.websocket is None


@pytest.mark.parametrize(
    ("http", "ws", "upgrades", "preface", "websocket"),
    [
        ("auto", "auto", [b"h2c", b"websocket"], True, True),
        ("auto", "none", [b"h2c"], True, False),
        ("h1", "auto", [b"websocket"], False, True),
        ("h1", "none", [], False, False),
    ],
)
def test_protocols_for_follows_http_and_ws(
    loop: asyncio.AbstractEventLoop,
    http: str,
    ws: str,
    upgrades: list[bytes],
    preface: bool,
    websocket: bool,
) -> None:
    """The wiring is made once, from the settings, and handed to the state whole."""
    config = Config(app=app, http=http, ws=ws)
    state = ServerState(config, app, loop, protocols_for(config))
    assert sorted(state.protocols.upgrades) == upgrades
    assert (state.protocols.http2_preface is not None) == preface
    assert (state.protocols.websocket is not None) == websocket
