"""The build under test. ``make test`` runs the suite twice: on the editable install (pure
Python) and on the wheel ``pip install .`` builds (hatch_build.py compiles the protocol
modules with mypyc), installed into a fresh venv with its dependencies resolved from its
metadata. ``EXPECTED_BUILD`` (``pure`` or ``compiled``) says which one a run expects."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import pytest
from hatch_build import COMPILED_MODULES, missing_types, third_party_imports, typed_packages
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import hasten

ROOT = Path(__file__).parent.parent
EXPECTED_BUILD = os.environ.get("EXPECTED_BUILD")

compiled_run = pytest.mark.skipif(
    EXPECTED_BUILD != "compiled", reason="a check of the installed wheel"
)


def compiled_module_names() -> list[str]:
    return [p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in COMPILED_MODULES]


def build_info() -> dict[str, Any]:
    """What the wheel's build recorded (``hasten/build.json``)."""
    info: dict[str, Any] = json.loads(resources.files(hasten).joinpath("build.json").read_text())
    return info


def build_requirements() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {
        canonicalize_name(Requirement(line).name) for line in pyproject["build-system"]["requires"]
    }


def test_the_build_hook_names_modules_that_exist() -> None:
    names = compiled_module_names()
    assert "hasten.protocols.http1.connection" in names
    for name in names:
        importlib.import_module(name)


def test_every_package_the_compiled_modules_import_is_a_build_requirement() -> None:
    packages = typed_packages(ROOT)
    assert {"websockets", "httptools"} <= set(packages)
    assert {canonicalize_name(name) for name in packages} <= build_requirements()


def test_no_module_of_hasten_imports_the_http2_oracles() -> None:
    """HTTP/2 is hasten's own: h2, hpack and hyperframe are test oracles, not dependencies."""
    modules = sorted(Path(ROOT, "src", "hasten").rglob("*.py"))
    assert not third_party_imports(modules) & {"h2", "hpack", "hyperframe"}


def test_a_package_without_types_is_reported_missing() -> None:
    assert missing_types(["websockets", "h2", "hasten_no_such_package"]) == [
        "hasten_no_such_package"
    ]


@pytest.mark.skipif(EXPECTED_BUILD is None, reason="the run names no build")
def test_the_build_under_test_is_the_expected_one() -> None:
    assert EXPECTED_BUILD in {"pure", "compiled"}
    expected = EXPECTED_BUILD == "compiled"
    assert hasten.compiled() is expected
    for name in compiled_module_names():
        module_file = importlib.import_module(name).__file__
        assert module_file is not None
        assert module_file.endswith(".py") is not expected, module_file


@pytest.mark.skipif(EXPECTED_BUILD != "pure", reason="a check of the editable install")
def test_the_pure_run_uses_the_editable_install() -> None:
    direct_url = json.loads(metadata.distribution("hasten").read_text("direct_url.json") or "{}")
    assert direct_url.get("dir_info", {}).get("editable") is True, direct_url


@compiled_run
def test_hasten_was_installed_from_a_wheel_and_its_dependencies_from_its_metadata() -> None:
    distribution = metadata.distribution("hasten")
    direct_url = json.loads(distribution.read_text("direct_url.json") or "{}")
    assert direct_url["url"].endswith(".whl"), direct_url
    assert "archive_info" in direct_url, direct_url
    runtime = [
        requirement
        for requirement in map(Requirement, distribution.requires or [])
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""})
    ]
    names = {canonicalize_name(r.name) for r in runtime}
    assert names >= {"websockets", "httptools"}
    assert not names & {"h2", "hpack", "hyperframe"}
    for requirement in runtime:
        installed = metadata.distribution(requirement.name)
        assert requirement.specifier.contains(installed.version, prereleases=True), (
            requirement,
            installed.version,
        )
        # pip marks what it was asked for by name; a dependency it resolved has no mark.
        assert installed.read_text("REQUESTED") is None, f"{requirement.name} was asked for"


@compiled_run
def test_the_wheel_was_compiled_against_the_typed_packages() -> None:
    info = build_info()
    assert len(info["c_digest"]) == 64
    typed = {canonicalize_name(name) for name in info["typed_against"]}
    assert {canonicalize_name(name) for name in typed_packages(ROOT)} <= typed
    for name, version in info["typed_against"].items():
        assert metadata.version(name) == version, name


@compiled_run
@pytest.mark.timeout(600)
def test_a_wheel_built_from_the_sdist_compiles_the_same_code(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (sdist,) = tmp_path.glob("hasten-*.tar.gz")
    with tarfile.open(sdist) as archive:
        assert any(name.endswith("/hatch_build.py") for name in archive.getnames())
    (wheel,) = tmp_path.glob("hasten-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        built = json.loads(archive.read("hasten/build.json"))
        assert any(name.startswith("hasten__mypyc") for name in archive.namelist())
    assert built == build_info()


@compiled_run
@pytest.mark.timeout(600)
def test_a_build_that_cannot_see_the_typed_packages_fails(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "hatchling", "mypy", "setuptools"], check=True)
    result = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "the compiled build needs the types of" in result.stdout + result.stderr
    assert not list(tmp_path.glob("*.whl"))
