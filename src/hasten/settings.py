"""How a setting is declared, and what it accepts.

A setting is a dataclass field of :class:`~hasten.config.Config` made by :func:`setting`. Its
type annotation says its kind (a ``Literal`` gives its choices, ``list[...]`` makes it
repeatable, ``| None`` optional, ``bool`` an on/off flag) and its metadata the rest: help
text, numeric bounds, names. :class:`SettingSpec` is that reading, the one the command line,
the environment, config files, validation and docs/settings.md all work from.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "HASTEN_"
MASK = "********"


class SettingValueError(ValueError):
    """A setting's value that is not allowed; ``setting`` names it, so that whoever knows
    where the value came from can say so; ``also`` names the settings it conflicts with."""

    def __init__(self, setting: str, message: str, *, also: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.setting = setting
        self.also = also


def setting(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    metavar: str | None = None,
    env: str | None = None,
    option: str | None = None,
    secret: bool = False,
) -> Any:
    """Declare a setting: a dataclass field whose metadata drives the sources and the docs.

    ``min`` and ``max`` bound a number inclusively, ``above`` exclusively (a timeout that must
    be more than 0); ``env`` names a legacy environment variable read as well as
    ``HASTEN_<NAME>``; ``option`` names the command-line option when it differs from the
    field (uvicorn's ``headers`` setting is ``--header``); ``secret`` masks the value wherever
    hasten shows it (``--print-config``, error messages) and keeps it off child processes'
    command lines.
    """
    metadata = {
        "help": help,
        "min": min,
        "max": max,
        "above": above,
        "metavar": metavar,
        "env": env,
        "option": option,
        "secret": secret,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class SettingSpec:
    """What a setting accepts, read from its ``Config`` field and type annotation."""

    name: str
    kind: type
    optional: bool
    many: bool
    choices: tuple[str, ...] | None
    help: str
    default: Any
    legacy_env: str | None
    option_name: str
    metavar: str | None = None
    min: float | None = None
    max: float | None = None
    above: float | None = None
    secret: bool = False

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def option(self) -> str:
        return "APP" if self.name == "app" else "--" + self.option_name.replace("_", "-")

    @property
    def flag(self) -> bool:
        """Whether the command line has it as a ``--name/--no-name`` pair."""
        return self.kind is bool and not self.many

    def shown(self, value: Any) -> Any:
        """``value`` as hasten may show it: a secret setting's value is masked."""
        return MASK if self.secret and value is not None else value

    def describe_bounds(self) -> str | None:
        """The numbers allowed, in words: ``0..65535``, ``>= 1``, ``> 0``; None if any."""
        if self.min is not None and self.max is not None:
            return f"{self.min}..{self.max}"
        if self.min is not None:
            return f">= {self.min}"
        if self.above is not None:
            return f"> {self.above}"
        return None

    def check(self, value: Any) -> None:
        """Raise ``SettingValueError`` when ``value`` is not one of the choices or out of the
        bounds (the type itself is the sources' business, or the embedding program's)."""
        if value is None:
            return
        if self.choices and value not in self.choices:
            raise SettingValueError(
                self.name,
                f"{self.name}={self.shown(value)!r} is not allowed; choose one of "
                + ", ".join(self.choices),
            )
        bounds = self.describe_bounds()
        if bounds is None or not isinstance(value, int | float):
            return
        too_low = (self.min is not None and value < self.min) or (
            self.above is not None and value <= self.above
        )
        too_high = self.max is not None and value > self.max
        if too_low or too_high:
            raise SettingValueError(
                self.name, f"{self.name}={self.shown(value)!r} is not allowed; use {bounds}"
            )


def spec_for(item: dataclasses.Field[Any], annotation: Any) -> SettingSpec:
    """The spec of one ``Config`` field, given its resolved type annotation."""
    optional = False
    many = False
    choices = None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arguments = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(arguments) < len(typing.get_args(annotation))
        # ``app`` is also an ASGI callable when embedded; from a source it is always text.
        annotation = str if str in arguments else arguments[0]
    if typing.get_origin(annotation) is list:
        many = True
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is typing.Literal:
        choices = tuple(typing.get_args(annotation))
        annotation = str
    if item.default_factory is not dataclasses.MISSING:
        default = item.default_factory()
    elif item.default is not dataclasses.MISSING:
        default = item.default
    else:
        default = None
    meta = item.metadata
    return SettingSpec(
        name=item.name,
        kind=annotation,
        optional=optional,
        many=many,
        choices=choices,
        help=meta.get("help", ""),
        default=default,
        legacy_env=meta.get("env"),
        option_name=meta.get("option") or item.name,
        metavar=meta.get("metavar"),
        min=meta.get("min"),
        max=meta.get("max"),
        above=meta.get("above"),
        secret=bool(meta.get("secret")),
    )
