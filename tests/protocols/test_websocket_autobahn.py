"""A fast subset of the Autobahn|Testsuite fuzzing client against an in-process server: the
framing, UTF-8, close and permessage-deflate cases that take seconds, not minutes. ``make
autobahn`` runs the whole suite (1-7, 9, 10, 12, 13). Skipped where wstest is not installed
(``make autobahn`` installs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import autobahn
from tests.apps.ws_echo import app
from tests.harness import run_server

pytestmark = pytest.mark.skipif(
    not autobahn.available(), reason="wstest is not installed (make autobahn)"
)

# 6.4.x wait seconds between fragments on purpose; 9.x (up to 16 MiB messages) and the
# larger messages of 12.x/13.x take minutes. The first case of each 12.x data set and each
# 13.x offer (1000 messages of 16 bytes) covers every negotiated parameter set.
_DEFLATE_CASES = [f"12.{data}.1" for data in range(1, 6)] + [
    f"13.{offer}.1" for offer in range(1, 8)
]
_FAST_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*", *_DEFLATE_CASES]
_SLOW_CASES = ["6.4.*"]


@pytest.mark.timeout(180)  # ~17 s alone; the Python 2 client is slow on a busy machine
def test_the_fast_autobahn_cases_pass(tmp_path: Path) -> None:
    with run_server(app) as server:
        url = f"ws://{server.host}:{server.port}"
        results = autobahn.fuzz(url, _FAST_CASES, tmp_path, exclude=_SLOW_CASES)
    assert len(results) > 250
    assert autobahn.failures(results) == []
