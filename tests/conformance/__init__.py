import pytest

# The shared assertions in wire.py report their operands like a test module's do.
pytest.register_assert_rewrite("tests.conformance.wire")
