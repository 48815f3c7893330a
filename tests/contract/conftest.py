from __future__ import annotations

import pytest

from tests.contract.carriers import CARRIERS, Carrier, carrier_named


@pytest.fixture(params=CARRIERS)
def carrier(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Carrier:
    """Each protocol an http request can arrive by; a test using it runs over all."""
    return carrier_named(request.param, tmp_path_factory.mktemp("certs"))
