"""Where settings come from: defaults < config file < ``HASTEN_*`` environment < command line.

Every source uses the names of the :class:`~hasten.config.Config` fields: ``timeout_keep_alive``
is ``timeout_keep_alive = 5`` in TOML, ``HASTEN_TIMEOUT_KEEP_ALIVE=5`` in the environment and
``--timeout-keep-alive 5`` on the command line. The settings reference (docs/settings.md) is
generated from the same fields by :func:`settings_reference`.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hasten.config import Config, setting_specs
from hasten.settings import ENV_PREFIX, SettingSpec, SettingValueError

# HASTEN_* variables that are not settings: HASTEN_COMPILE chooses how a wheel is built
# (hatch_build.py), and may well stay exported in the shell that then runs the server.
NOT_SETTINGS = frozenset({"HASTEN_COMPILE"})
CONFIG_FILE_NAME = "hasten.toml"
PYPROJECT_FILE_NAME = "pyproject.toml"
DEFAULT = "default"
COMMAND_LINE = "command line"

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """A setting that no source may give: an unknown name or a value of the wrong kind."""


def _describe_kind(spec: SettingSpec) -> str:
    if spec.choices:
        allowed = "one of " + ", ".join(spec.choices)
    else:
        allowed = {
            bool: "true or false",
            int: "an integer",
            float: "a number",
            str: "a string",
        }[spec.kind]
    if spec.many:
        allowed = f"a list of {allowed.removeprefix('a ').removeprefix('an ')}s"
    return allowed


def _bad_value(spec: SettingSpec, value: Any, source: str) -> SettingsError:
    return SettingsError(
        f"{spec.name}={spec.shown(value)!r} from {source} is not allowed: expected "
        f"{_describe_kind(spec)}"
    )


def _coerce_item(spec: SettingSpec, value: Any, source: str, *, from_text: bool) -> Any:
    kind = spec.kind
    if from_text and isinstance(value, str):
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() in _TRUE_WORDS:
                    return True
                if text.lower() in _FALSE_WORDS:
                    return False
                raise ValueError(text)
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
        except ValueError:
            raise _bad_value(spec, value, source) from None
        result: Any = value
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        result = value
    else:
        raise _bad_value(spec, value, source)
    if spec.choices and result not in spec.choices:
        raise _bad_value(spec, value, source)
    return result


def coerce_setting(spec: SettingSpec, value: Any, source: str, *, from_text: bool) -> Any:
    """``value`` as ``spec``'s type, or ``SettingsError`` naming the setting and ``source``.

    Text (environment variables) is parsed: ``true``/``false``, numbers, and comma-separated
    lists; an empty string unsets an optional setting. TOML values must have the right type.
    """
    if from_text and isinstance(value, str) and not value.strip() and spec.optional:
        return None
    if spec.many:
        if from_text and isinstance(value, str):
            items: list[Any] = [part for part in value.split(",") if part.strip()]
        elif isinstance(value, list):
            items = value
        else:
            raise _bad_value(spec, value, source)
        return [_coerce_item(spec, item, source, from_text=from_text) for item in items]
    return _coerce_item(spec, value, source, from_text=from_text)


def _unknown(
    name: str, source: str, specs: Mapping[str, SettingSpec], *, env: bool
) -> SettingsError:
    known = [spec.env_name for spec in specs.values()] if env else list(specs)
    shown = ENV_PREFIX + name.upper() if env else name
    close = difflib.get_close_matches(shown, known, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return SettingsError(
        f"unknown setting {shown!r} in {source}{hint} (every setting is listed by "
        "`hasten --help` and in docs/settings.md)"
    )


def find_config_file(
    explicit: str | os.PathLike[str] | None, cwd: Path
) -> tuple[Path, dict[str, Any]] | None:
    """The config file in use and its settings table, or ``None`` when there is none.

    ``--config FILE`` wins; otherwise ``hasten.toml``, otherwise ``[tool.hasten]`` in
    ``pyproject.toml``, both in the working directory.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise SettingsError(f"config file {str(path)!r} (from --config) does not exist")
        document = _read_toml(path)
        if path.name == PYPROJECT_FILE_NAME:
            return path, _tool_table(document, path)
        return path, document
    candidate = cwd / CONFIG_FILE_NAME
    if candidate.is_file():
        return candidate, _read_toml(candidate)
    pyproject = cwd / PYPROJECT_FILE_NAME
    if pyproject.is_file():
        document = _read_toml(pyproject)
        if "hasten" in document.get("tool", {}):
            return pyproject, _tool_table(document, pyproject)
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"config file {str(path)!r} cannot be read: {exc}") from None


def _tool_table(document: dict[str, Any], path: Path) -> dict[str, Any]:
    table = document.get("tool", {}).get("hasten", {})
    if not isinstance(table, dict):
        raise SettingsError(f"[tool.hasten] in {str(path)!r} must be a table")
    return table


@dataclass
class ResolvedSettings:
    """The effective settings and, for each, the source it came from."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value: Any, origin: str) -> None:
        self.values[name] = value
        self.origins[name] = origin

    def config_settings(self) -> dict[str, Any]:
        """The settings as ``Config`` keyword arguments (without ``app``)."""
        return {name: value for name, value in self.values.items() if name != "app"}


def resolve_settings(
    command_line: Mapping[str, Any],
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ResolvedSettings:
    """Merge the four sources; ``command_line`` holds only the options actually given."""
    environ = os.environ if environ is None else environ
    specs = setting_specs()
    resolved = ResolvedSettings()
    for spec in specs.values():
        if spec.name != "app":
            resolved.set(spec.name, spec.default, DEFAULT)

    found = find_config_file(config_file, cwd or Path.cwd())
    if found is not None:
        path, table = found
        for name, value in table.items():
            _take(resolved, specs, name, value, f"config file {path.name}")
    for spec in specs.values():
        if spec.legacy_env and spec.legacy_env in environ:
            source = f"environment variable {spec.legacy_env}"
            _take(resolved, specs, spec.name, environ[spec.legacy_env], source, from_text=True)
    for env_name, text in environ.items():
        if env_name.startswith(ENV_PREFIX) and env_name not in NOT_SETTINGS:
            name = env_name.removeprefix(ENV_PREFIX).lower()
            source = f"environment variable {env_name}"
            _take(resolved, specs, name, text, source, from_text=True)
    for name, value in command_line.items():
        _take(resolved, specs, name, value, COMMAND_LINE)

    if "app" in resolved.values:
        _check_values(resolved)
    return resolved


def _take(
    resolved: ResolvedSettings,
    specs: Mapping[str, SettingSpec],
    name: str,
    value: Any,
    source: str,
    *,
    from_text: bool = False,
) -> None:
    spec = specs.get(name)
    if spec is None:
        raise _unknown(name, source, specs, env=from_text)
    resolved.set(name, coerce_setting(spec, value, source, from_text=from_text), source)


def _check_values(resolved: ResolvedSettings) -> None:
    """Run ``Config``'s own validation and say which source gave the offending value."""
    try:
        Config(app=resolved.values["app"], **resolved.config_settings())
    except SettingValueError as exc:
        origin = resolved.origins.get(exc.setting)
        if origin and exc.also:
            # A conflict: each side may come from a different source.
            origins = ", ".join(
                f"{name} from {resolved.origins[name]}"
                for name in (exc.setting, *exc.also)
                if name in resolved.origins
            )
            raise SettingsError(f"{exc} ({origins})") from None
        raise SettingsError(f"{exc} (from {origin})" if origin else str(exc)) from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


def format_effective_settings(resolved: ResolvedSettings) -> str:
    """``--print-config``: every setting as a TOML line, with the source it came from."""
    lines = ["# hasten: effective settings; after each, where it came from"]
    specs = setting_specs()
    entries = []
    for name in specs:
        if name not in resolved.values:
            continue
        value = specs[name].shown(resolved.values[name])
        text = f"# {name} is not set" if value is None else f"{name} = {_toml_value(value)}"
        entries.append((text, resolved.origins[name]))
    width = max(len(text) for text, _ in entries)
    lines += [f"{text.ljust(width)}  # {origin}" for text, origin in entries]
    return "\n".join(lines) + "\n"


def _default_text(spec: SettingSpec) -> str:
    if spec.name == "app":
        return "required"
    if spec.default is None or spec.default == []:
        return "not set"
    return f"`{_toml_value(spec.default)}`"


def settings_reference() -> str:
    """The text of docs/settings.md, generated from the ``Config`` fields."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated from hasten.config.Config by hasten.sources.settings_reference();",
        "     tests/test_config_sources.py fails when this file is out of date. Regenerate with",
        "     python -c 'from hasten.sources import settings_reference as r; print(r(), end=\"\")'"
        " > docs/settings.md -->",
        "",
        "Every setting has one name in all four places it can be given. Later sources win:",
        "",
        "1. the default;",
        "2. the config file: `--config FILE`, else `hasten.toml`, else `[tool.hasten]` in",
        "   `pyproject.toml`, in the working directory (keys are the setting names);",
        "3. the environment: `HASTEN_<NAME>` (booleans `true`/`false`, lists comma-separated,",
        "   an empty value unsets an optional setting);",
        "4. the command line.",
        "",
        "`hasten --print-config` shows the effective settings and where each came from. An",
        "unknown name, or a value of the wrong type or outside what `Allowed` says, is an error",
        "naming the setting and its source.",
        "",
        "| setting (TOML key) | command line | environment | default | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in setting_specs().values():
        env = f"`{spec.env_name}`"
        if spec.legacy_env:
            env += f", `{spec.legacy_env}`"
        option = spec.option
        if spec.kind is bool and not spec.many:
            option += f" / --no-{spec.option_name.replace('_', '-')}"
        meaning = spec.help
        bounds = spec.describe_bounds()
        if bounds is not None:
            meaning += f" Allowed: `{bounds}`."
        if spec.choices:
            meaning += " One of " + ", ".join(f"`{choice}`" for choice in spec.choices) + "."
        meaning = meaning.replace("|", "\\|")
        lines.append(f"| `{spec.name}` | `{option}` | {env} | {_default_text(spec)} | {meaning} |")
    return "\n".join(lines) + "\n"


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=VALUE`` lines, ``export`` and quotes allowed, ``#`` comments."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"env_file {str(path)!r} cannot be read: {exc}") from None
    variables: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum():
            raise SettingsError(f"env_file {str(path)!r} line {number} is not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        variables[name] = value
    return variables


def apply_env_file(path: str | os.PathLike[str]) -> None:
    """Load ``path`` into ``os.environ`` for the app; variables already set are kept."""
    for name, value in read_env_file(path).items():
        os.environ.setdefault(name, value)
