"""An app module whose own import fails: it imports a module that does not exist."""

import hasten_test_missing_dependency  # noqa: F401

app = None
