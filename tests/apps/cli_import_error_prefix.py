"""An app module importing a missing module whose name is a prefix of its own."""

import cli_import  # noqa: F401

app = None
