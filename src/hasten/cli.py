"""``hasten APP [options]``: command-line options, generated from :class:`Config`."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from importlib import resources
from typing import Any

import click

import hasten
from hasten.config import setting_specs
from hasten.settings import SettingSpec
from hasten.sources import SettingsError, format_effective_settings, resolve_settings


def _click_type(spec: SettingSpec) -> Any:
    # Only the type: bounds are checked with every other source's values, by Config.
    if spec.choices:
        return click.Choice(list(spec.choices))
    return {int: click.INT, float: click.FLOAT, str: click.STRING}.get(spec.kind, click.STRING)


def _flag_default(default: object) -> str:
    return "auto" if default is None else "on" if default else "off"


def _option_for(spec: SettingSpec) -> Callable[[Any], Any]:
    if spec.flag:
        no_option = "--no-" + spec.option_name.replace("_", "-")
        return click.option(
            f"{spec.option}/{no_option}",
            spec.name,
            default=None,
            help=f"{spec.help}  [default: {_flag_default(spec.default)}]",
        )
    shown = "" if spec.default in (None, [], "") else f"  [default: {spec.default}]"
    return click.option(
        spec.option,
        spec.name,
        type=_click_type(spec),
        multiple=spec.many,
        default=None,
        metavar=spec.metavar,
        help=f"{spec.help}{shown}",
    )


def _build_description() -> str:
    """Which build runs; a compiled one names the digest of its generated C (the wheel's
    ``hasten/build.json``), so two installs can be told apart or matched."""
    if not hasten.compiled():
        return "pure Python"
    info = json.loads(resources.files(hasten).joinpath("build.json").read_text())
    return f"compiled, build {info['c_digest'][:12]}"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    build = _build_description()
    click.echo(
        f"hasten {hasten.__version__} ({build}) with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}"
    )
    ctx.exit()


def _with_config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for spec in reversed([s for s in setting_specs().values() if s.name != "app"]):
        command = _option_for(spec)(command)
    return command


@click.command(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": None})
@click.argument("app", metavar="APP", required=False)
@_with_config_options
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Read settings from this TOML file.  [default: hasten.toml, else [tool.hasten] "
    "in pyproject.toml]",
)
@click.option(
    "--print-config",
    is_flag=True,
    default=False,
    help="Show the effective settings and where each came from, then exit.",
)
@click.option(
    "--version",
    is_flag=True,
    callback=_print_version,
    expose_value=False,
    is_eager=True,
    help="Show the version and exit.",
)
def main(app: str | None, config_file: str | None, print_config: bool, **options: Any) -> None:
    """Serve the ASGI application APP, given as module:attribute (e.g. main:app).

    Settings come from defaults < config file < HASTEN_* environment < these options.
    """
    given: dict[str, Any] = {} if app is None else {"app": app}
    for name, value in options.items():
        if value is None or value == ():
            continue
        given[name] = list(value) if isinstance(value, tuple) else value
    try:
        resolved = resolve_settings(given, config_file=config_file)
    except SettingsError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    if print_config:
        click.echo(format_effective_settings(resolved), nl=False)
        return
    if "app" not in resolved.values:
        raise click.UsageError("Missing argument 'APP'.")
    try:
        hasten.run(resolved.values["app"], **resolved.config_settings())
    except ValueError as exc:  # a setting's value
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
