"""Log output of a real ``hasten`` process: access templates, JSON lines, colours, escaping,
and ``--log-config`` files in JSON, YAML and INI."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from pathlib import Path

import pytest

from hasten.logs import AccessEntry, AccessLogFormat, JsonFormatter, TextFormatter
from tests.harness import HastenProcess, RawClient, hasten_process, request
from tests.test_config_sources import run_hasten


def send(running: HastenProcess, raw: bytes) -> int:
    sock = socket.create_connection((running.host, running.port), timeout=5)
    with RawClient(sock) as client:
        client.send(raw)
        return client.read_response().status


def test_access_log_format_fills_named_fields() -> None:
    template = "{client} {method} {path} q={query} HTTP/{http_version} {status} {duration_ms}ms"
    with hasten_process("proc_pid:app", "--port", "0", "--access-log-format", template) as running:
        send(running, request(path="/items?id=7", headers={"Connection": "close"}))
        line = running.wait_for_line("GET /items")
        assert " q=id=7 HTTP/1.1 200 " in line
        assert line.split()[1].startswith("127.0.0.1:")
        assert line.rstrip().endswith("ms")


def test_access_log_format_fills_bytes_and_header_fields() -> None:
    template = "{status} bytes={bytes} ua={request.user-agent} len={response.content-length}"
    with hasten_process("proc_pid:app", "--port", "0", "--access-log-format", template) as running:
        headers = {"User-Agent": "probe/1.0", "Connection": "close"}
        send(running, request(path="/x", headers=headers))
        line = running.wait_for_line("bytes=")
    pid_length = len(str(running.process.pid))
    assert f"200 bytes={pid_length} ua=probe/1.0 len={pid_length}" in line


def test_access_log_format_with_an_unknown_field_is_a_usage_error() -> None:
    result = run_hasten("proc_pid:app", "--access-log-format", "{client} {colour}")
    assert result.returncode == 2
    assert "unknown field {colour}" in result.stderr


def test_json_log_format_writes_one_object_per_line() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--log-format", "json") as running:
        send(running, request(path="/json", headers={"Connection": "close"}))
        running.wait_for_line('"path": "/json"')
        records = [json.loads(line) for line in running.output().splitlines()]
    access = next(r for r in records if r["logger"] == "hasten.access")
    assert access["method"] == "GET"
    assert access["status"] == 200
    assert access["http_version"] == "1.1"
    assert isinstance(access["duration_ms"], float)
    assert any(r["logger"] == "hasten.error" and r["level"] == "info" for r in records)


PROXIED = ("--proxy-headers", "--forwarded-allow-ips", "*")


def test_json_log_escapes_c1_controls_in_a_forwarded_client_address() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--log-format", "json", *PROXIED) as running:
        headers = {"X-Forwarded-For": "203.0.113.9\x85forged", "Connection": "close"}
        send(running, request(path="/c1", headers=headers))
        line = running.wait_for_line('"path": "/c1"')
    assert "\x85" not in running.output()
    assert json.loads(line)["client"] == "203.0.113.9\\x85forged:0"


def test_access_log_format_escapes_a_forwarded_client_address() -> None:
    with hasten_process(
        "proc_pid:app", "--port", "0", "--access-log-format", "{client} {path}", *PROXIED
    ) as running:
        headers = {"X-Forwarded-For": "203.0.113.9\x9b31m", "Connection": "close"}
        send(running, request(path="/csi", headers=headers))
        line = running.wait_for_line("/csi")
    assert "\x9b" not in running.output()
    assert "203.0.113.9\\x9b31m:0 /csi" in line


def test_json_log_escapes_c1_controls_in_an_exception() -> None:
    try:
        raise ValueError("header \x85forged \u2028line")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\x85" not in line
    assert "\u2028" not in line
    assert "header \x85forged \u2028line" in json.loads(line)["exception"]


def test_no_colours_when_not_on_a_terminal() -> None:
    with hasten_process("proc_pid:app", "--port", "0") as running:
        assert "\x1b[" not in running.output()


def test_use_colors_forces_coloured_levels() -> None:
    with hasten_process("proc_pid:app", "--port", "0", "--use-colors") as running:
        assert "\x1b[32mINFO" in running.output()


def _record(message: str, access: AccessEntry | None = None) -> logging.LogRecord:
    record = logging.LogRecord("hasten.error", logging.INFO, __file__, 1, message, (), None)
    if access is not None:
        record.access = access
    return record


def _entry(user_agent: bytes) -> AccessEntry:
    return AccessEntry(
        "127.0.0.1:5000",
        "GET",
        b"/p",
        b"",
        "1.1",
        200,
        0.001,
        12,
        [(b"user-agent", user_agent)],
        [(b"content-type", b"text/plain")],
    )


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_control_characters_in_any_message_are_escaped(formatter: logging.Formatter) -> None:
    line = formatter.format(_record("bad \x1b[31mred\x9b\r\nfake line"))
    assert "\x1b" not in line
    assert "\x9b" not in line
    assert "\n" not in line
    assert "\\x1b[31mred" in line


def test_header_fields_in_the_access_template_are_escaped() -> None:
    template = AccessLogFormat("{request.user-agent} {response.content-type} {bytes} {request.x}")
    formatter = TextFormatter(access_template=template)
    line = formatter.format(_record("ignored", _entry(b"evil\x1b]0;title\x07")))
    assert line == "INFO     evil\\x1b]0;title\\x07 text/plain 12 -"


LOG_CONFIGS = {
    "json": json.dumps(
        {
            "version": 1,
            "formatters": {"plain": {"format": "CUSTOM %(name)s %(message)s"}},
            "handlers": {
                "file": {"class": "logging.FileHandler", "filename": "{log}", "formatter": "plain"}
            },
            "loggers": {"hasten.access": {"handlers": ["file"], "level": "INFO"}},
        }
    ),
    "yaml": """
version: 1
formatters:
  plain: {format: "CUSTOM %(name)s %(message)s"}
handlers:
  file: {class: logging.FileHandler, filename: "{log}", formatter: plain}
loggers:
  hasten.access: {handlers: [file], level: INFO}
""",
    "ini": """
[loggers]
keys=root,access

[handlers]
keys=file

[formatters]
keys=plain

[logger_root]
handlers=

[logger_access]
qualname=hasten.access
level=INFO
handlers=file
propagate=0

[handler_file]
class=FileHandler
formatter=plain
args=('{log}',)

[formatter_plain]
format=CUSTOM %(name)s %(message)s
""",
}


@pytest.mark.parametrize("kind", sorted(LOG_CONFIGS))
def test_log_config_file_sets_up_the_access_log(tmp_path: Path, kind: str) -> None:
    log = tmp_path / "access.log"
    config = tmp_path / f"logging.{kind}"
    config.write_text(LOG_CONFIGS[kind].replace("{log}", str(log)))
    with hasten_process("proc_pid:app", "--port", "0", "--log-config", str(config)) as running:
        send(running, request(path="/configured", headers={"Connection": "close"}))
        running.wait_for_line("Listening on")  # the error log still goes to stderr
        deadline_text = ""
        for _ in range(200):
            deadline_text = log.read_text() if log.exists() else ""
            if "/configured" in deadline_text:
                break
            time.sleep(0.02)
    assert deadline_text.startswith("CUSTOM hasten.access ")
    assert '"GET /configured HTTP/1.1" 200' in deadline_text
