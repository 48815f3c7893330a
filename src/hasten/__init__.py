"""hasten: a fast, complete and hard-to-break ASGI server.

Embedding::

    import hasten
    hasten.run("main:app", port=8080)        # blocking, like the `hasten` command

    config = hasten.Config(app=app, port=0)
    server = hasten.Server(config)
    await server.serve()                      # stop it with `server.should_exit = True`
"""

from __future__ import annotations

import sys
from typing import Any

from hasten.asgi import ASGIApplication
from hasten.config import Config
from hasten.importer import AppLoadError
from hasten.logs import error_logger
from hasten.protocols.http1 import connection as _http1
from hasten.server import STARTUP_FAILURE, Server
from hasten.sources import apply_env_file
from hasten.supervisors import needs_supervisor, run_supervised

__version__ = "0.1.0"
__all__ = ["Config", "Server", "__version__", "compiled", "run"]


def compiled() -> bool:
    """Whether the protocol modules run as a C extension (a wheel's build compiles them with
    mypyc: ``hatch_build.py``) rather than from their Python source."""
    return not _http1.__file__.endswith(".py")


def run(app: ASGIApplication | str, **settings: Any) -> None:
    """Serve ``app`` (an ASGI app or ``"module:attr"``) until interrupted.

    ``settings`` are :class:`Config` fields (``host``, ``port``, ``lifespan`` ...). Exits the
    process with status 1 when the app cannot be loaded and 3 when it fails to start.
    """
    config = Config(app=app, **settings)
    config.configure_logging()
    if config.env_file is not None:
        apply_env_file(config.env_file)
    if needs_supervisor(config):
        sys.exit(run_supervised(config))
    server = Server(config)
    try:
        server.run()
    except AppLoadError as exc:
        error_logger.error(
            "Error loading ASGI app. %s",
            exc,
            exc_info=exc if config.log_level_number <= 10 else None,
        )
        sys.exit(1)
    except KeyboardInterrupt:  # pragma: no cover - a forced exit during startup
        pass
    if server.exit_code:
        sys.exit(server.exit_code)
    if not server.started:
        sys.exit(STARTUP_FAILURE)
