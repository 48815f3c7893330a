import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests import their helpers as `tests.harness`; the apps they serve live in tests/apps.
sys.path.insert(0, str(Path(__file__).parent.parent))
sys.path.insert(0, str(Path(__file__).parent / "apps"))


@pytest.fixture
def captured_errors() -> Iterator[list[logging.LogRecord]]:
    """Records of ``hasten.error`` (it doesn't propagate, so caplog can't see it)."""
    records: list[logging.LogRecord] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = ListHandler(logging.DEBUG)
    logger = logging.getLogger("hasten.error")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
