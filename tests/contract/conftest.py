from __future__ import annotations

import pytest

from tests.contract.carriers import CARRIERS, Carrier, carrier_named
from tests.contract.ws_carriers import WEBSOCKET_CARRIERS, WebSocketCarrier


@pytest.fixture(params=CARRIERS)
def carrier(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Carrier:
    """Each protocol an http request can arrive by; a test using it runs over all."""
    return carrier_named(request.param, tmp_path_factory.mktemp("certs"))


@pytest.fixture(params=sorted(WEBSOCKET_CARRIERS))
def ws_carrier(request: pytest.FixtureRequest) -> WebSocketCarrier:
    """Each carrier of a WebSocket; a test using it runs over both."""
    return WEBSOCKET_CARRIERS[request.param]()
