"""Logging: the ``hasten.error`` and ``hasten.access`` loggers and the access-log line."""

from __future__ import annotations

import logging
import re
import sys

error_logger = logging.getLogger("hasten.error")
access_logger = logging.getLogger("hasten.access")

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_HANDLER_MARK = "_hasten_handler"


def configure_logging(level: int) -> None:
    """Send hasten's loggers to stderr at ``level`` unless the user configured them already."""
    formatter = logging.Formatter("%(levelname)-8s %(message)s")
    for logger in (error_logger, access_logger):
        logger.setLevel(level)
        if logger.handlers and not any(getattr(h, _HANDLER_MARK, False) for h in logger.handlers):
            continue  # configured by the embedding program: leave it alone
        logger.propagate = False
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def _escape_match(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    return f"\\x{ord(char):02x}"


def escape_control_characters(text: str) -> str:
    """Make request-controlled text safe for a log line (no terminal escapes, no fake lines)."""
    return _CONTROL_CHARACTERS.sub(_escape_match, text)


def log_access(
    client: tuple[str, int] | None,
    method: str,
    raw_path: bytes,
    query_string: bytes,
    http_version: str,
    status: int,
    duration: float,
) -> None:
    """Write one access-log line: client, request line, status and duration in ms."""
    target = raw_path.decode("latin-1")
    if query_string:
        target += "?" + query_string.decode("latin-1")
    peer = f"{client[0]}:{client[1]}" if client else "unix"
    access_logger.info(
        '%s - "%s %s HTTP/%s" %d %.1fms',
        peer,
        escape_control_characters(method),
        escape_control_characters(target),
        http_version,
        status,
        duration * 1000.0,
    )
