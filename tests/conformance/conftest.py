from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.recording_app import RecordingApp
from tests.harness import RunningServer, run_server


@pytest.fixture(scope="module")
def module_server() -> Iterator[tuple[RunningServer, RecordingApp]]:
    app = RecordingApp()
    with run_server(app, http="h1") as server:
        yield server, app


@pytest.fixture
def served(module_server: tuple[RunningServer, RecordingApp]) -> tuple[RunningServer, RecordingApp]:
    server, app = module_server
    app.requests.clear()
    return server, app
