"""Logging: the ``hasten.error`` and ``hasten.access`` loggers and the access-log line."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

error_logger = logging.getLogger("hasten.error")
access_logger = logging.getLogger("hasten.access")

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_HANDLER_MARK = "_hasten_handler"


def configure_logging(
    level: int,
    *,
    log_format: str = "text",
    use_colors: bool | None = None,
    access_log_format: str | None = None,
    log_config: str | None = None,
) -> None:
    """Send hasten's loggers to stderr at ``level`` unless the user configured them already.

    ``log_config`` (a dictConfig file in JSON or YAML, or an INI fileConfig file) is applied
    first, and a logger it gives handlers is left as it set it up. ``log_format`` is ``text``
    (colours only when ``use_colors``, or on a terminal by default) or ``json``.
    """
    if log_config is not None:
        load_log_config(log_config)
    if use_colors is None:
        use_colors = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    access_template = AccessLogFormat(access_log_format) if access_log_format else None
    for logger in (error_logger, access_logger):
        if logger.handlers and not any(getattr(h, _HANDLER_MARK, False) for h in logger.handlers):
            continue  # configured by the embedding program or --log-config: leave it alone
        logger.setLevel(level)
        logger.propagate = False
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        handler = logging.StreamHandler(sys.stderr)
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
        else:
            template = access_template if logger is access_logger else None
            handler.setFormatter(TextFormatter(use_colors=use_colors, access_template=template))
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)


def load_log_config(path: str) -> None:
    """Apply a logging configuration file: ``.json``, ``.yaml``/``.yml`` or INI (anything else)."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"log_config: {path!r} does not exist")
    suffix = file.suffix.lower()
    if suffix in (".json", ".yaml", ".yml"):
        text = file.read_text(encoding="utf-8")
        if suffix == ".json":
            settings = json.loads(text)
        else:
            try:
                import yaml  # noqa: PLC0415 -- optional: only YAML log configs need PyYAML
            except ImportError:
                raise ValueError(f"log_config: reading {path!r} needs PyYAML installed") from None
            settings = yaml.safe_load(text)
        if not isinstance(settings, dict):
            raise ValueError(f"log_config: {path!r} does not hold a dictConfig mapping")
        # Loggers created before the file is read (hasten's own) must keep working.
        settings.setdefault("disable_existing_loggers", False)
        logging.config.dictConfig(settings)
    else:
        logging.config.fileConfig(path, disable_existing_loggers=False)


# C0, DEL and C1 controls, and the Unicode line and paragraph separators, which log viewers
# and str.splitlines() take for line breaks.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\\\\]")


def _escape_match(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_control_characters(text: str) -> str:
    """Make request-controlled text safe for a log line (no terminal escapes, no fake lines)."""
    return _CONTROL_CHARACTERS.sub(_escape_match, text)


def log_access(
    scope: Mapping[str, Any],
    status: int,
    duration: float,
    *,
    response_bytes: int | None = None,
    response_headers: Sequence[tuple[bytes, bytes]] | None = None,
) -> None:
    """Write one access-log line for the request ``scope`` (any protocol): client, request
    line, status and duration in ms.

    The keyword arguments feed ``--access-log-format`` fields and ``--log-format json``;
    a field whose value a protocol does not pass is logged as ``-``.
    """
    client = scope["client"]
    method = scope.get("method", "GET")  # a WebSocket scope has none: its request is a GET
    raw_path = scope["raw_path"]
    query_string = scope["query_string"]
    http_version = scope["http_version"]
    request_headers = scope["headers"]
    target = raw_path.decode("latin-1")
    if query_string:
        target += "?" + query_string.decode("latin-1")
    peer = f"{client[0]}:{client[1]}" if client else "unix"
    entry = AccessEntry(
        peer,
        method,
        raw_path,
        query_string,
        http_version,
        status,
        duration,
        response_bytes,
        request_headers,
        response_headers,
    )
    access_logger.info(
        '%s - "%s %s HTTP/%s" %d %.1fms',
        escape_control_characters(peer),  # its host may come from X-Forwarded-For
        escape_control_characters(method),
        escape_control_characters(target),
        http_version,
        status,
        duration * 1000.0,
        extra={"access": entry},
    )


@dataclass(slots=True)
class AccessEntry:
    """One response, as the access-log formatters see it (``record.access``)."""

    client: str
    method: str
    raw_path: bytes
    query_string: bytes
    http_version: str
    status: int
    duration: float
    response_bytes: int | None
    request_headers: Sequence[tuple[bytes, bytes]] | None
    response_headers: Sequence[tuple[bytes, bytes]] | None

    def fields(self) -> dict[str, Any]:
        """The named fields of ``--access-log-format`` (headers excepted), escaped."""
        return {
            "client": escape_control_characters(self.client),  # X-Forwarded-For text
            "method": escape_control_characters(self.method),
            "path": escape_control_characters(self.raw_path.decode("latin-1")),
            "query": escape_control_characters(self.query_string.decode("latin-1")),
            "http_version": self.http_version,
            "status": self.status,
            "bytes": "-" if self.response_bytes is None else self.response_bytes,
            "duration_ms": round(self.duration * 1000.0, 3),
        }


def _header_value(headers: Sequence[tuple[bytes, bytes]] | None, name: bytes) -> str:
    if headers is None:
        return "-"
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    return escape_control_characters(", ".join(values)) if values else "-"


ACCESS_LOG_FIELDS = {
    "client": "client address, host:port (or unix)",
    "method": "request method",
    "path": "request path, as sent",
    "query": "query string, without '?'",
    "http_version": "HTTP version: 1.0, 1.1 or 2",
    "status": "response status code",
    "bytes": "response body bytes",
    "duration_ms": "time from request to the end of the response, in ms",
    "request.NAME": "request header NAME",
    "response.NAME": "response header NAME",
}
_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")
_HEADER_FIELD = re.compile(r"(request|response)\.([!#$%&'*+.^_`|~0-9A-Za-z-]+)")


class AccessLogFormat:
    """An ``--access-log-format`` template: text with ``{field}`` placeholders.

    Fields are the keys of ``ACCESS_LOG_FIELDS``; ``{request.user-agent}`` and
    ``{response.content-type}`` name headers. An unknown field is a ``ValueError``.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self.parts: list[str | Callable[[AccessEntry, dict[str, Any]], str]] = []
        position = 0
        for match in _TEMPLATE_FIELD.finditer(template):
            self.parts.append(template[position : match.start()])
            self.parts.append(self._field_getter(match.group(1)))
            position = match.end()
        self.parts.append(template[position:])

    def _field_getter(self, name: str) -> Callable[[AccessEntry, dict[str, Any]], str]:
        header = _HEADER_FIELD.fullmatch(name)
        if header is not None:
            side, header_name = header.group(1), header.group(2).lower().encode("latin-1")
            if side == "request":
                return lambda entry, _: _header_value(entry.request_headers, header_name)
            return lambda entry, _: _header_value(entry.response_headers, header_name)
        if name not in ACCESS_LOG_FIELDS:
            raise ValueError(
                f"access_log_format: unknown field {{{name}}}; use "
                + ", ".join("{" + field + "}" for field in ACCESS_LOG_FIELDS)
            )
        return lambda _, fields: str(fields[name])

    def render(self, entry: AccessEntry) -> str:
        fields = entry.fields()
        return "".join(
            part if isinstance(part, str) else part(entry, fields) for part in self.parts
        )


_LEVEL_COLOURS = {
    "TRACE": "\x1b[34m",
    "DEBUG": "\x1b[36m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}
_RESET = "\x1b[0m"
_LINE_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What json.dumps(ensure_ascii=False) leaves raw yet a terminal or a line splitter acts on.
_JSON_RAW_CONTROLS = re.compile("[\x7f-\x9f\u2028\u2029]")


def escape_line(text: str) -> str:
    """Escape every control character of a log message (the formatters' last line of defence)."""
    return _LINE_CONTROL_CHARACTERS.sub(_escape_match, text)


class TextFormatter(logging.Formatter):
    """``LEVEL    message``; colours only when asked; an access template if one is given."""

    def __init__(
        self, *, use_colors: bool = False, access_template: AccessLogFormat | None = None
    ) -> None:
        super().__init__("%(levelname)s %(message)s")
        self.use_colors = use_colors
        self.access_template = access_template

    def format(self, record: logging.LogRecord) -> str:
        entry = getattr(record, "access", None)
        if self.access_template is not None and isinstance(entry, AccessEntry):
            message = self.access_template.render(entry)
        else:
            message = escape_line(record.getMessage())
        level = f"{record.levelname:<8}"
        if self.use_colors:
            level = f"{_LEVEL_COLOURS.get(record.levelname, '')}{level}{_RESET}"
        line = f"{level} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, access fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": escape_line(record.getMessage()),
        }
        entry = getattr(record, "access", None)
        if isinstance(entry, AccessEntry):
            document.update(entry.fields())
            if entry.response_bytes is None:
                document["bytes"] = None
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        line = json.dumps(document, ensure_ascii=False)
        # Only strings can hold these, so \\uXXXX keeps the same JSON value, in every field.
        return _JSON_RAW_CONTROLS.sub(lambda match: f"\\u{ord(match.group()):04x}", line)
