"""An app module that raises while it is being imported."""

raise RuntimeError("configuration is missing")
