"""One declaration per setting: choices from its Literal type, bounds from its metadata,
checked once for every source, and an error that names the setting and where it came from."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hasten import Config
from hasten.cli import main
from hasten.config import LOG_LEVELS, LogLevel, setting_specs, settings_view
from hasten.protocols.http2.limits import H2Limits
from hasten.settings import SettingSpec, SettingValueError
from hasten.sources import SettingsError, resolve_settings

BOUNDED = [spec for spec in setting_specs().values() if spec.describe_bounds() is not None]


def just_outside(spec: SettingSpec) -> Any:
    """The nearest value past the lower bound, as the setting's type (so a source's 0 for a
    float setting is shown as 0.0, the value Config gets)."""
    bound = spec.min - 1 if spec.min is not None else spec.above
    return spec.kind(bound)


def just_inside(spec: SettingSpec) -> Any:
    return spec.kind(spec.min) if spec.min is not None else spec.kind(spec.above) + 0.5


def test_choices_are_the_arguments_of_the_literal_type() -> None:
    hints = typing.get_type_hints(Config)
    literal_fields = [
        name for name, hint in hints.items() if typing.get_origin(hint) is typing.Literal
    ]
    assert literal_fields == ["lifespan", "loop", "log_level", "log_format", "http", "ws"]
    for name in literal_fields:
        assert setting_specs()[name].choices == typing.get_args(hints[name])
    assert not any("choices" in field.metadata for field in dataclasses.fields(Config))


def test_command_line_choices_are_the_literal_choices() -> None:
    options = {param.name: param for param in main.params}
    for spec in setting_specs().values():
        if spec.choices:
            option_type = options[spec.name].type
            assert isinstance(option_type, click.Choice)
            assert tuple(option_type.choices) == spec.choices


def test_log_level_numbers_cover_exactly_the_log_level_choices() -> None:
    assert tuple(LOG_LEVELS) == typing.get_args(LogLevel)


def test_the_command_line_has_one_option_per_setting_by_its_spec() -> None:
    options = {param.name: param for param in main.params if isinstance(param, click.Option)}
    for spec in setting_specs().values():
        if spec.name == "app":
            continue
        option = options[spec.name]
        assert spec.option in option.opts
        assert option.multiple == spec.many
        assert bool(option.secondary_opts) == spec.flag


def test_every_bounded_setting_refuses_a_value_past_its_bound_by_name() -> None:
    assert len(BOUNDED) > 30
    for spec in BOUNDED:
        with pytest.raises(SettingValueError) as caught:
            Config(app="m:a", **{spec.name: just_outside(spec)})
        assert caught.value.setting == spec.name
        assert str(caught.value).startswith(f"{spec.name}={just_outside(spec)!r} is not allowed")
        Config(app="m:a", **{spec.name: just_inside(spec)})


@pytest.mark.parametrize("spec", BOUNDED, ids=[spec.name for spec in BOUNDED])
@pytest.mark.parametrize("source", ["command line", "environment", "config file"])
def test_bounds_hold_for_every_source(tmp_path: Path, spec: SettingSpec, source: str) -> None:
    bad = just_outside(spec)
    command_line: dict[str, Any] = {"app": "m:a"}
    environ: dict[str, str] = {}
    if source == "command line":
        command_line[spec.name] = bad
        origin = "command line"
    elif source == "environment":
        environ[spec.env_name] = str(bad)
        origin = f"environment variable {spec.env_name}"
    else:
        (tmp_path / "hasten.toml").write_text(f"{spec.name} = {bad!r}\n")
        origin = "config file hasten.toml"
    with pytest.raises(SettingsError) as caught:
        resolve_settings(command_line, environ=environ, cwd=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{spec.name}={bad!r} is not allowed; use ")
    assert message.endswith(f"(from {origin})")


def test_command_line_bound_error_exits_2_naming_the_option_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no config file of the repository's own
    result = CliRunner().invoke(main, ["m:a", "--ws-max-queue", "0"])
    assert result.exit_code == 2
    assert "ws_max_queue=0 is not allowed; use >= 1 (from command line)" in result.output


def test_an_invalid_value_blames_its_own_source_not_a_neighbours(tmp_path: Path) -> None:
    (tmp_path / "hasten.toml").write_text("ws_max_size = 1024\n")
    with pytest.raises(SettingsError) as caught:
        resolve_settings({"app": "m:a"}, environ={"HASTEN_WS_MAX_QUEUE": "0"}, cwd=tmp_path)
    assert str(caught.value) == (
        "ws_max_queue=0 is not allowed; use >= 1 (from environment variable HASTEN_WS_MAX_QUEUE)"
    )


@pytest.mark.parametrize(
    ("name", "value", "start"),
    [
        ("uds_mode", "999", "uds_mode='999' is not allowed"),
        ("metrics_bind", "localhost", "metrics_bind='localhost' is not allowed; use HOST:PORT"),
        ("access_log_format", "{nope}", "access_log_format: unknown field {nope}"),
        ("root_path", "/api/", "root_path='/api/' is not allowed"),
        ("forwarded_allow_ips", "10.0.0.0/33", "forwarded_allow_ips='10.0.0.0/33' is not allowed"),
    ],
)
def test_checks_beyond_bounds_also_name_the_setting_and_its_source(
    tmp_path: Path, name: str, value: str, start: str
) -> None:
    (tmp_path / "hasten.toml").write_text(f"{name} = {value!r}\n")
    with pytest.raises(SettingsError) as caught:
        resolve_settings({"app": "m:a"}, environ={}, cwd=tmp_path)
    assert str(caught.value).startswith(start)
    assert str(caught.value).endswith("(from config file hasten.toml)")


def test_h2_limits_take_every_default_from_config() -> None:
    assert all(field.default is dataclasses.MISSING for field in dataclasses.fields(H2Limits))
    limits = settings_view(H2Limits, Config(app="m:a"))
    assert limits.h2_max_concurrent_streams == setting_specs()["h2_max_concurrent_streams"].default
    assert limits.limit_request_body is None
