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

# hatch_build.COMPILED_MODULES, as module names.
COMPILED_MODULES = (
    "hasten.state",
    "hasten.protocols.flow",
    "hasten.protocols.h1_checks",
    "hasten.protocols.h1_cycle",
    "hasten.protocols.http1",
    "hasten.protocols.http2",
    "hasten.protocols.http2_stream",
    "hasten.protocols.http2_websocket",
    "hasten.protocols.websocket",
    "hasten.protocols.websocket_connection",
)


@pytest.mark.skipif("EXPECTED_BUILD" not in os.environ, reason="the run names no build")
def test_the_build_under_test_is_the_expected_one() -> None:
    assert os.environ["EXPECTED_BUILD"] in {"pure", "compiled"}
    expected = os.environ["EXPECTED_BUILD"] == "compiled"
    assert hasten.compiled() is expected
    for name in COMPILED_MODULES:
        module_file = importlib.import_module(name).__file__
        assert module_file is not None
        assert module_file.endswith(".py") is not expected, module_file


def test_the_compiled_module_list_matches_the_build_hook() -> None:
    hook = Path(__file__).parent.parent / "hatch_build.py"
    assignments = {
        target.id: node.value
        for node in ast.walk(ast.parse(hook.read_text()))
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    paths = ast.literal_eval(assignments["COMPILED_MODULES"])
    names = tuple(p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in paths)
    assert names == COMPILED_MODULES
