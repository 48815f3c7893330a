"""The ``hasten`` command, run as a real subprocess."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import hasten
from tests.harness import (
    APPS_DIR,
    RawClient,
    hasten_command,
    hasten_process,
    request,
    skip_without_ipv6_loopback,
)
from tests.subprocesses import listening_process, run_to_exit


def test_python_dash_m_hasten_serves_the_app() -> None:
    with hasten_process("cli_target:app", "--port", "0") as running:
        response = httpx.get(running.url + "/hello")
    assert response.status_code == 200
    assert response.json()["path"] == "/hello"


def test_hasten_console_script_serves_the_app() -> None:
    script = Path(sys.executable).with_name("hasten")
    with listening_process([str(script), "cli_target:app", "--port", "0"]) as url:
        assert httpx.get(url + "/").status_code == 200


def test_dotted_attribute_is_resolved() -> None:
    with hasten_process("cli_target:holder.inner.app", "--port", "0") as running:
        assert httpx.get(running.url).status_code == 200


def test_port_zero_logs_the_real_port_and_serves_there() -> None:
    with hasten_process("cli_target:app", "--port", "0") as running:
        line = running.wait_for_line("Listening on")
        assert running.port != 0
        assert f"Listening on http://127.0.0.1:{running.port} (Press CTRL+C to quit)" in line
        assert httpx.get(running.url).status_code == 200


def test_uds_serves_on_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "hasten.sock")
    with hasten_process("cli_target:app", "--uds", path) as running:
        assert f"Listening on unix socket {path}" in running.wait_for_line("Listening on")
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport) as client:
            response = client.get("http://localhost/over-uds")
    assert response.json()["path"] == "/over-uds"


def test_fd_serves_on_an_inherited_listening_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        fd = listener.fileno()
        command = hasten_command("cli_target:app", "--fd", str(fd))
        with listening_process(command, pass_fds=[fd]) as url:
            assert url == f"http://127.0.0.1:{port}"
            assert httpx.get(url + "/via-fd").json()["path"] == "/via-fd"


def test_app_dir_is_searched_for_the_app_module(tmp_path: Path) -> None:
    with hasten_process(
        "cli_target:app", "--port", "0", "--app-dir", str(APPS_DIR), cwd=tmp_path
    ) as running:
        assert httpx.get(running.url).status_code == 200


def test_factory_is_called_to_get_the_app() -> None:
    with hasten_process("cli_target:make_app", "--factory", "--port", "0") as running:
        assert httpx.get(running.url).status_code == 200


def test_root_path_reaches_the_scope() -> None:
    with hasten_process("cli_target:app", "--port", "0", "--root-path", "/api") as running:
        body = httpx.get(running.url + "/items").json()
    # The proxy in front stripped the prefix; the scope's path carries it again (ASGI spec).
    assert body["root_path"] == "/api"
    assert body["path"] == "/api/items"


@pytest.mark.parametrize(("loop", "module"), [("asyncio", "asyncio"), ("uvloop", "uvloop")])
def test_loop_option_selects_the_event_loop(loop: str, module: str) -> None:
    with hasten_process("cli_target:app", "--port", "0", "--loop", loop) as running:
        body = httpx.get(running.url).json()
    assert body["loop_module"].split(".")[0] == module


def test_header_option_adds_default_response_headers() -> None:
    with hasten_process(
        "cli_target:app", "--port", "0", "--header", "X-Team:blue", "--header", "X-Zone: a"
    ) as running:
        response = httpx.get(running.url)
    assert response.headers["x-team"] == "blue"
    assert response.headers["x-zone"] == "a"


def test_version_prints_the_version_and_the_build() -> None:
    result = run_to_exit("--version")
    assert result.returncode == 0
    build = r"compiled, build [0-9a-f]{12}" if hasten.compiled() else r"pure Python"
    assert re.match(rf"hasten {re.escape(hasten.__version__)} \({build}\) with ", result.stdout)


def test_help_lists_the_options() -> None:
    result = run_to_exit("--help")
    assert result.returncode == 0
    for option in (
        "--host",
        "--port",
        "--uds",
        "--fd",
        "--bind",
        "--insecure-bind",
        "--backlog",
        "--app-dir",
        "--factory",
        "--lifespan",
        "--root-path",
        "--loop",
        "--log-level",
        "--access-log / --no-access-log",
        "--server-header / --no-server-header",
        "--date-header / --no-date-header",
        "--header",
        "--limit-concurrency",
        "--timeout-keep-alive",
        "--timeout-graceful-shutdown",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "--version",
        "--help",
    ):
        assert option in result.stdout, option


def assert_one_error_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    error_lines = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert len(error_lines) == 1, output
    assert expected in error_lines[0], output
    assert "Traceback" not in output


def test_app_path_without_colon_is_one_error_line() -> None:
    assert_one_error_line(run_to_exit("cli_target"), '"<module>:<attribute>"')


def test_missing_module_is_one_error_line() -> None:
    assert_one_error_line(
        run_to_exit("no_such_module_here:app"), 'Could not import module "no_such_module_here"'
    )


def test_missing_attribute_is_one_error_line() -> None:
    assert_one_error_line(
        run_to_exit("cli_target:nothing"), 'Attribute "nothing" not found in module "cli_target"'
    )


def test_missing_import_inside_the_app_module_is_one_error_line() -> None:
    assert_one_error_line(run_to_exit("cli_import_error:app"), "hasten_test_missing_dependency")


def test_exception_at_import_of_the_app_module_is_one_error_line() -> None:
    assert_one_error_line(
        run_to_exit("cli_raises_at_import:app"), "RuntimeError: configuration is missing"
    )


def test_non_callable_app_is_one_error_line() -> None:
    assert_one_error_line(run_to_exit("cli_target:not_an_app"), "not callable")


def test_factory_that_raises_is_one_error_line() -> None:
    assert_one_error_line(
        run_to_exit("cli_target:broken_factory", "--factory"), "the factory is broken"
    )


def test_debug_log_level_shows_the_traceback_of_a_load_error() -> None:
    result = run_to_exit("cli_raises_at_import:app", "--log-level", "debug")
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" in output
    assert "configuration is missing" in output


@pytest.mark.parametrize(
    "args",
    [("--port", "not-a-number"), ("--port", "70000"), ("--lifespan", "sometimes")],
    ids=["port-type", "port-range", "lifespan-choice"],
)
def test_invalid_option_value_exits_2(args: tuple[str, str]) -> None:
    result = run_to_exit("cli_target:app", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Listening on" not in result.stdout + result.stderr


def test_forwarded_allow_ips_is_read_from_the_environment() -> None:
    with hasten_process(
        "cli_target:app", "--port", "0", "--proxy-headers", env={"FORWARDED_ALLOW_IPS": "10.1.1.1"}
    ) as running:
        body = httpx.get(running.url, headers={"x-forwarded-for": "203.0.113.9"}).json()
    # 127.0.0.1 is no longer trusted, so its X-Forwarded-For is ignored.
    assert body["client"][0] == "127.0.0.1"


def test_default_headers_are_server_and_date() -> None:
    with hasten_process("cli_target:app", "--port", "0") as running:
        response = httpx.get(running.url)
    assert response.headers["server"] == "hasten"
    assert "date" in response.headers


def test_no_server_header_and_no_date_header_drop_them() -> None:
    with hasten_process(
        "cli_target:app", "--port", "0", "--no-server-header", "--no-date-header"
    ) as running:
        response = httpx.get(running.url)
    assert "server" not in response.headers
    assert "date" not in response.headers


def test_access_log_writes_a_line_per_response() -> None:
    with hasten_process("cli_target:app", "--port", "0") as running:
        httpx.get(running.url + "/logged?x=1")
        running.wait_for_line('"GET /logged?x=1 HTTP/1.1" 200')


def test_no_access_log_silences_the_access_log() -> None:
    with hasten_process("cli_target:app", "--port", "0", "--no-access-log") as running:
        httpx.get(running.url + "/silent")
        running.process.terminate()
        running.wait()
    assert "Shutting down" in running.output()
    assert "/silent" not in running.output()


def test_timeout_keep_alive_option_closes_idle_connections() -> None:
    with hasten_process("cli_target:app", "--port", "0", "--timeout-keep-alive", "0.3") as running:
        client = RawClient(socket.create_connection((running.host, running.port), timeout=5))
        with client:
            client.send(request())
            assert client.read_response().status == 200
            assert client.is_closed(timeout=4)


def test_limit_concurrency_option_answers_503_beyond_the_limit(tmp_path: Path) -> None:
    with hasten_process(
        "slow_app:app",
        "--port",
        "0",
        "--limit-concurrency",
        "1",
        env={"SLOW_APP_RELEASE_FILE": str(tmp_path / "release")},
    ) as running:
        busy = RawClient(socket.create_connection((running.host, running.port), timeout=5))
        busy.send(request("GET", "/slow"))
        running.wait_for_line("request started")
        with RawClient(socket.create_connection((running.host, running.port), timeout=5)) as extra:
            extra.send(request())
            assert extra.read_response().status == 503
        (tmp_path / "release").touch()
        assert busy.read_response().status == 200
        busy.close()


def test_ipv6_host_is_served_and_logged_in_brackets() -> None:
    skip_without_ipv6_loopback()
    with hasten_process("cli_target:app", "--host", "::1", "--port", "0") as running:
        assert "Listening on http://[::1]:" in running.wait_for_line("Listening on")
        assert httpx.get(f"http://[::1]:{running.port}/").status_code == 200


@pytest.mark.parametrize(
    "header",
    ["X-Evil:a\r\nSet-Cookie: session=forged", "X-Evil:a\nb", "X-Evil:a\rb", "X\r\nEvil:a"],
)
def test_header_option_with_cr_or_lf_is_refused_at_startup(header: str) -> None:
    result = run_to_exit("cli_target:app", "--port", "0", "--header", header, timeout=10)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "headers:" in result.stderr
    assert "Listening on" not in result.stdout + result.stderr
