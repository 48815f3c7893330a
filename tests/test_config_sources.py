"""Settings from four sources: defaults < config file < HASTEN_* environment < command line."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from hasten import Config
from hasten.binds import TCPAddress
from hasten.sources import (
    SettingsError,
    apply_env_file,
    read_env_file,
    resolve_settings,
    settings_reference,
)
from tests.harness import APPS_DIR, RawClient, hasten_command, hasten_process, request

REPO = Path(__file__).parent.parent


def test_each_source_overrides_the_one_before(tmp_path: Path) -> None:
    (tmp_path / "hasten.toml").write_text(
        'app = "main:app"\nport = 1111\nbacklog = 10\ntimeout_keep_alive = 7\n'
    )
    environ = {"HASTEN_BACKLOG": "20", "HASTEN_TIMEOUT_KEEP_ALIVE": "8"}
    resolved = resolve_settings({"timeout_keep_alive": 9.0}, environ=environ, cwd=tmp_path)
    assert resolved.values["host"] == "127.0.0.1"
    assert resolved.origins["host"] == "default"
    assert resolved.values["port"] == 1111
    assert resolved.origins["port"] == "config file hasten.toml"
    assert resolved.values["backlog"] == 20
    assert resolved.origins["backlog"] == "environment variable HASTEN_BACKLOG"
    assert resolved.values["timeout_keep_alive"] == 9.0
    assert resolved.origins["timeout_keep_alive"] == "command line"


def test_pyproject_tool_table_is_read_when_there_is_no_hasten_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.hasten]\nport = 2222\n')
    resolved = resolve_settings({}, environ={}, cwd=tmp_path)
    assert resolved.values["port"] == 2222
    assert resolved.origins["port"] == "config file pyproject.toml"


def test_hasten_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.hasten]\nport = 2222\n")
    (tmp_path / "hasten.toml").write_text("port = 3333\n")
    assert resolve_settings({}, environ={}, cwd=tmp_path).values["port"] == 3333


def test_explicit_config_file_wins_over_hasten_toml(tmp_path: Path) -> None:
    (tmp_path / "hasten.toml").write_text("port = 3333\n")
    other = tmp_path / "prod.toml"
    other.write_text("port = 4444\n")
    resolved = resolve_settings({}, config_file=other, environ={}, cwd=tmp_path)
    assert resolved.values["port"] == 4444
    assert resolved.origins["port"] == "config file prod.toml"


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        resolve_settings({}, config_file=tmp_path / "nope.toml", environ={}, cwd=tmp_path)


def test_unknown_config_file_key_names_key_source_and_suggestion(tmp_path: Path) -> None:
    (tmp_path / "hasten.toml").write_text("timeout_keepalive = 3\n")
    with pytest.raises(SettingsError) as caught:
        resolve_settings({}, environ={}, cwd=tmp_path)
    message = str(caught.value)
    assert "'timeout_keepalive'" in message
    assert "config file hasten.toml" in message
    assert "timeout_keep_alive" in message


def test_unknown_hasten_environment_variable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"HASTEN_PROT.*HASTEN_PORT"):
        resolve_settings({}, environ={"HASTEN_PROT": "1"}, cwd=tmp_path)


def test_the_build_variable_is_not_taken_for_a_setting(tmp_path: Path) -> None:
    resolved = resolve_settings({}, environ={"HASTEN_COMPILE": "never"}, cwd=tmp_path)
    assert "compile" not in resolved.values


def test_wrong_type_in_config_file_names_key_source_and_allowed(tmp_path: Path) -> None:
    (tmp_path / "hasten.toml").write_text('port = "eighty"\n')
    with pytest.raises(SettingsError) as caught:
        resolve_settings({}, environ={}, cwd=tmp_path)
    assert str(caught.value) == (
        "port='eighty' from config file hasten.toml is not allowed: expected an integer"
    )


def test_bad_choice_from_environment_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"HASTEN_LIFESPAN.*one of auto, on, off"):
        resolve_settings({}, environ={"HASTEN_LIFESPAN": "maybe"}, cwd=tmp_path)


def test_out_of_range_value_names_its_source(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"port=70000.*\(from environment variable"):
        resolve_settings({"app": "main:app"}, environ={"HASTEN_PORT": "70000"}, cwd=tmp_path)


def test_environment_text_is_parsed_for_booleans_lists_and_unset(tmp_path: Path) -> None:
    environ = {
        "HASTEN_ACCESS_LOG": "off",
        "HASTEN_HEADERS": "X-A: 1,X-B: 2",
        "HASTEN_TIMEOUT_GRACEFUL_SHUTDOWN": "",
    }
    values = resolve_settings({}, environ=environ, cwd=tmp_path).values
    assert values["access_log"] is False
    assert values["headers"] == ["X-A: 1", "X-B: 2"]
    assert values["timeout_graceful_shutdown"] is None


def test_web_concurrency_sets_workers_below_hasten_workers(tmp_path: Path) -> None:
    resolved = resolve_settings({}, environ={"WEB_CONCURRENCY": "3"}, cwd=tmp_path)
    assert resolved.values["workers"] == 3
    both = {"WEB_CONCURRENCY": "3", "HASTEN_WORKERS": "2"}
    assert resolve_settings({}, environ=both, cwd=tmp_path).values["workers"] == 2


def test_env_file_is_parsed_with_quotes_comments_and_export(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nexport A=1\nB='two words'\nC=\"x=y\"\nD=plain # trailing\n\nE=\n"
    )
    assert read_env_file(env_file) == {
        "A": "1",
        "B": "two words",
        "C": "x=y",
        "D": "plain",
        "E": "",
    }


def test_env_file_does_not_override_variables_already_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ENV_FILE_TEST_KEPT=file\nENV_FILE_TEST_NEW=file\n")
    monkeypatch.setenv("ENV_FILE_TEST_KEPT", "process")
    # set, then deleted: monkeypatch restores (removes) it after the test
    monkeypatch.setenv("ENV_FILE_TEST_NEW", "")
    monkeypatch.delenv("ENV_FILE_TEST_NEW")
    apply_env_file(env_file)

    assert os.environ["ENV_FILE_TEST_KEPT"] == "process"
    assert os.environ["ENV_FILE_TEST_NEW"] == "file"


def test_settings_reference_in_docs_is_up_to_date() -> None:
    written = (REPO / "docs" / "settings.md").read_text()
    assert written == settings_reference(), (
        "docs/settings.md is out of date; regenerate it with: python -c 'from hasten.sources "
        'import settings_reference as r; print(r(), end="")\' > docs/settings.md'
    )


def run_hasten(
    *args: str, cwd: Path = APPS_DIR, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m hasten ARGS`` to completion, without the caller's HASTEN_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HASTEN_")}
    return subprocess.run(
        hasten_command(*args),
        check=False,
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_print_config_shows_each_value_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "hasten.toml").write_text('app = "main:app"\nport = 1111\nbacklog = 10\n')
    result = run_hasten(
        "--print-config", "--backlog", "30", cwd=tmp_path, env={"HASTEN_PORT": "2222"}
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith('app = "main:app"') and "config file" in line for line in lines)
    assert any(
        line.startswith("port = 2222") and "environment variable HASTEN_PORT" in line
        for line in lines
    )
    assert any(line.startswith("backlog = 30") and "command line" in line for line in lines)
    assert any(line.startswith('host = "127.0.0.1"') and "default" in line for line in lines)


def test_unknown_config_key_exits_2_with_the_key_in_the_message(tmp_path: Path) -> None:
    (tmp_path / "hasten.toml").write_text("colour = true\n")
    result = run_hasten("main:app", cwd=tmp_path, env={})
    assert result.returncode == 2
    assert "unknown setting 'colour' in config file hasten.toml" in result.stderr


def test_missing_app_in_every_source_is_a_usage_error(tmp_path: Path) -> None:
    result = run_hasten(cwd=tmp_path, env={})
    assert result.returncode == 2
    assert "Missing argument 'APP'" in result.stderr


def test_env_file_variables_reach_the_app(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("GREETING='hello from the env file'\n")
    with hasten_process("proc_env:app", "--port", "0", "--env-file", str(env_file)) as running:
        sock = socket.create_connection((running.host, running.port), timeout=5)
        with RawClient(sock) as client:
            client.send(request(headers={"Connection": "close"}))
            assert client.read_response().body == b"hello from the env file"


def test_print_config_masks_secret_settings(tmp_path: Path) -> None:
    result = run_hasten(
        "main:app", "--ssl-keyfile-password", "s3cret-pass", "--print-config", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "s3cret-pass" not in result.stdout
    assert any(
        line.startswith('ssl_keyfile_password = "********"') and "command line" in line
        for line in result.stdout.splitlines()
    )


def test_a_secret_of_the_wrong_type_is_not_shown_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "hasten.toml").write_text("ssl_keyfile_password = 12345678\n")
    with pytest.raises(SettingsError, match=r"ssl_keyfile_password='\*+'") as caught:
        resolve_settings({}, environ={}, cwd=tmp_path)
    assert "12345678" not in str(caught.value)


def test_bind_is_a_list_from_every_source(tmp_path: Path) -> None:
    (tmp_path / "hasten.toml").write_text('bind = ["127.0.0.1:8000", "unix:/tmp/a.sock"]\n')
    from_file = resolve_settings({"app": "m:a"}, environ={}, cwd=tmp_path)
    assert from_file.values["bind"] == ["127.0.0.1:8000", "unix:/tmp/a.sock"]
    environ = {"HASTEN_BIND": "[::1]:8443, 127.0.0.1:8443", "HASTEN_SSL_CERTFILE": "c.pem"}
    environ["HASTEN_INSECURE_BIND"] = ":8080"
    from_env = resolve_settings({"app": "m:a"}, environ=environ, cwd=tmp_path)
    config = Config(app="m:a", **from_env.config_settings())
    assert [item.address for item in config.listen_addresses] == [
        TCPAddress("::1", 8443),
        TCPAddress("127.0.0.1", 8443),
        TCPAddress("127.0.0.1", 8080),
    ]
    assert from_env.values["insecure_bind"] == [":8080"]
    from_cli = resolve_settings({"app": "m:a", "bind": ["fd://3"]}, environ=environ, cwd=tmp_path)
    assert from_cli.values["bind"] == ["fd://3"]


@pytest.mark.parametrize(
    ("toml", "environ", "command_line", "message"),
    [
        (
            'bind = ["localhost"]',
            {},
            {},
            "bind: 'localhost' is not allowed; use HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N "
            "(from config file hasten.toml)",
        ),
        (
            "",
            {"HASTEN_BIND": "unix:"},
            {},
            "bind: 'unix:' is not allowed; use HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N "
            "(from environment variable HASTEN_BIND)",
        ),
        (
            "",
            {},
            {"bind": [":80", ":80"]},
            "bind: ':80' is the same address as another listener (from command line)",
        ),
        (
            "port = 9000",
            {"HASTEN_BIND": ":80"},
            {},
            "port=9000 cannot be combined with bind; give every address as a bind instead "
            "(here: '127.0.0.1:9000') (port from config file hasten.toml, bind from "
            "environment variable HASTEN_BIND)",
        ),
        (
            "",
            {},
            {"insecure_bind": [":80"]},
            "insecure_bind needs ssl_certfile: without TLS every bind is plaintext already "
            "(from command line)",
        ),
    ],
    ids=["toml-malformed", "env-malformed", "cli-twice", "conflict", "insecure-without-tls"],
)
def test_bad_or_conflicting_binds_name_the_setting_and_its_source(
    tmp_path: Path,
    toml: str,
    environ: dict[str, str],
    command_line: dict[str, object],
    message: str,
) -> None:
    (tmp_path / "hasten.toml").write_text(toml + "\n")
    with pytest.raises(SettingsError) as caught:
        resolve_settings({"app": "m:a", **command_line}, environ=environ, cwd=tmp_path)
    assert str(caught.value) == message


def test_bind_with_uds_on_the_command_line_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        hasten_command("cli_target:app", "--bind", ":0", "--uds", str(tmp_path / "a.sock")),
        cwd=APPS_DIR,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "uds=" in result.stderr
    assert "cannot be combined with bind" in result.stderr
    assert "(uds from command line, bind from command line)" in result.stderr
    assert "Listening on" not in result.stdout + result.stderr
