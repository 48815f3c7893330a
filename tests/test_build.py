"""The build under test: ``make test`` runs the suite twice, against the editable install
(pure Python) and against a wheel whose protocol modules mypyc compiled (hatch_build.py),
and says which one each run expects in ``EXPECTED_BUILD`` (``pure`` or ``compiled``)."""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

import hasten

BUILD_HOOK = Path(__file__).parent.parent / "hatch_build.py"


def compiled_module_names() -> list[str]:
    """The modules hatch_build.py compiles (its ``COMPILED_MODULES``), as module names."""
    for node in ast.parse(BUILD_HOOK.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED_MODULES"
            for target in node.targets
        ):
            paths: tuple[str, ...] = ast.literal_eval(node.value)
            return [p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError("hatch_build.py defines no COMPILED_MODULES")


def test_the_build_hook_names_modules_that_exist() -> None:
    names = compiled_module_names()
    assert "hasten.protocols.http1" in names
    for name in names:
        importlib.import_module(name)


@pytest.mark.skipif("EXPECTED_BUILD" not in os.environ, reason="the run names no build")
def test_the_build_under_test_is_the_expected_one() -> None:
    assert os.environ["EXPECTED_BUILD"] in {"pure", "compiled"}
    expected = os.environ["EXPECTED_BUILD"] == "compiled"
    assert hasten.compiled() is expected
    for name in compiled_module_names():
        module_file = importlib.import_module(name).__file__
        assert module_file is not None
        assert module_file.endswith(".py") is not expected, module_file
