import sys
from pathlib import Path

# Tests import their helpers as `tests.harness`; the apps they serve live in tests/apps.
sys.path.insert(0, str(Path(__file__).parent.parent))
sys.path.insert(0, str(Path(__file__).parent / "apps"))
