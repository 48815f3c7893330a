"""Hatchling build hook: wheels carry hasten's protocol modules compiled with mypyc.

The request hot path is plain, fully typed Python; mypyc turns it into a C extension with
the same behaviour (callgrind: a third fewer instructions per HTTP/1.1 request), and the
``.py`` files ship beside it. ``HASTEN_COMPILE`` chooses:

- ``auto`` (default): compile on CPython; if the compiler fails (no C compiler), build a
  pure-Python wheel and say so;
- ``always``: compile or fail the build;
- ``never``: a pure-Python wheel.

Editable installs are never compiled, so that an edit to a ``.py`` file takes effect at once.

The code mypyc generates depends on the types it sees, so the build must see the same ones
wherever it runs. The third-party packages the compiled modules import (``typed_packages``)
are build requirements and must be found by mypy; a build environment without one fails,
whatever ``HASTEN_COMPILE`` says, rather than compiling them as ``Any`` (that build once
laid out a subclass of a websockets class as if it derived from ``object`` and crashed on
every WebSocket). Everything else mypy reaches through hasten's uncompiled modules
(uvloop, watchfiles, prometheus_client, yaml) is never followed, so it is ``Any`` whether
or not it is installed. The sources are compiled from a copy under their package-relative
paths, so the generated C does not depend on where the project lives either; its digest
goes into the wheel as ``hasten/build.json`` (``hasten --version`` shows it).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# The modules every request runs through, and the ones they call per request.
COMPILED_MODULES = (
    "src/hasten/state.py",
    "src/hasten/protocols/flow.py",
    "src/hasten/protocols/exchange.py",
    "src/hasten/protocols/http1/checks.py",
    "src/hasten/protocols/http1/cycle.py",
    "src/hasten/protocols/http1/connection.py",
    "src/hasten/protocols/http2/huffman.py",
    "src/hasten/protocols/http2/header_compression.py",
    "src/hasten/protocols/http2/frames.py",
    "src/hasten/protocols/http2/machine.py",
    "src/hasten/protocols/http2/fields.py",
    "src/hasten/protocols/http2/limits.py",
    "src/hasten/protocols/http2/connection.py",
    "src/hasten/protocols/http2/stream.py",
    "src/hasten/protocols/websocket/over_http2.py",
    "src/hasten/protocols/websocket/handshake.py",
    "src/hasten/protocols/websocket/connection.py",
    "src/hasten/protocols/websocket/frames.py",
    "src/hasten/protocols/websocket/permessage_deflate.py",
)

# Run in a scratch directory so that setuptools never reads this project's pyproject.toml.
_SETUP_SCRIPT = """\
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="hasten-compiled",
    ext_modules=mypycify(
        ["--config-file", {config!r}, *{sources!r}], target_dir={target!r}, group_name="hasten"
    ),
)
"""


def third_party_imports(paths: list[Path]) -> set[str]:
    """The top-level third-party packages that the modules at ``paths`` import."""
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"hasten", "__future__"}


def typed_packages(root: Path) -> list[str]:
    """The third-party packages the compiled modules import: mypyc must see their types."""
    return sorted(third_party_imports([Path(root, module) for module in COMPILED_MODULES]))


def untyped_packages(root: Path) -> list[str]:
    """The third-party packages only hasten's uncompiled modules import: Any to mypyc."""
    everything = third_party_imports(sorted(Path(root, "src", "hasten").rglob("*.py")))
    return sorted(everything - set(typed_packages(root)))


def mypy_config(untyped: list[str], cache_dir: Path) -> str:
    """mypyc's settings: every import must be found, except ``untyped``, which is never
    followed (stubs included), so it is Any whether or not it is installed."""
    config = f"[mypy]\ncache_dir = {cache_dir}\n"
    if untyped:
        config += (
            f"[mypy-{','.join(f'{name}.*' for name in untyped)}]\n"
            "follow_imports = skip\n"
            "follow_imports_for_stubs = True\n"
            "ignore_missing_imports = True\n"
        )
    return config


def missing_types(packages: list[str]) -> list[str]:
    """Those of ``packages`` that this interpreter cannot give mypy the types of."""
    missing = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        locations = spec.submodule_search_locations if spec is not None else None
        if not locations or not Path(next(iter(locations)), "py.typed").is_file():
            missing.append(name)
    return missing


def distribution_versions(packages: list[str]) -> dict[str, str]:
    """The installed distributions that provide ``packages``, with their versions."""
    providers = importlib.metadata.packages_distributions()
    names = {dist for name in packages for dist in providers.get(name, [name])}
    return {name: importlib.metadata.version(name) for name in sorted(names)}


def c_digest(directory: Path) -> str:
    """A digest of the C that mypyc generated: equal digests, equal extensions."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.suffix in {".c", ".h"}:
            digest.update(str(path.relative_to(directory)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


class CompileHotPath(BuildHookInterface):
    """Compiles ``COMPILED_MODULES`` into the wheel (see the module docstring)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._scratch: str | None = None
        if self.target_name != "wheel" or version == "editable":
            return
        mode = os.environ.get("HASTEN_COMPILE", "auto")
        if mode not in {"auto", "always", "never"}:
            raise ValueError(f"HASTEN_COMPILE must be auto, always or never, not {mode!r}")
        if mode == "never" or (mode == "auto" and platform.python_implementation() != "CPython"):
            return
        root = Path(self.root)
        packages = typed_packages(root)
        missing = missing_types(packages)
        if missing:
            raise RuntimeError(
                "hasten: the compiled build needs the types of "
                f"{', '.join(missing)} (build requirements in pyproject.toml), and this "
                "build environment lacks them. Build with pip's default build isolation, "
                "install them into this environment, or set HASTEN_COMPILE=never."
            )
        scratch = self._scratch = tempfile.mkdtemp(prefix="hasten-mypyc-")
        source_root = Path(scratch, "src")
        shutil.copytree(
            root / "src" / "hasten",
            source_root / "hasten",
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"),
        )
        generated = Path(scratch, "c")
        built = Path(scratch, "lib")
        config = Path(scratch, "mypy.ini")
        config.write_text(mypy_config(untyped_packages(root), Path(scratch, "mypy-cache")))
        sources = [module.removeprefix("src/") for module in COMPILED_MODULES]
        setup = Path(scratch, "setup.py")
        setup.write_text(
            _SETUP_SCRIPT.format(config=str(config), sources=sources, target=str(generated))
        )
        command = [
            sys.executable,
            str(setup),
            "build_ext",
            "--build-lib",
            str(built),
            "--build-temp",
            str(Path(scratch, "temp")),
        ]
        result = subprocess.run(
            command,
            cwd=source_root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if result.returncode != 0:
            output = result.stdout.decode(errors="replace")
            if mode == "always":
                raise RuntimeError(f"mypyc could not compile hasten:\n{output}")
            self.app.display_warning(
                "hasten: mypyc could not compile the protocol modules; building a "
                f"pure-Python wheel (set HASTEN_COMPILE=never to skip trying).\n{output[-2000:]}"
            )
            return
        for extension in built.rglob("*"):
            if extension.suffix in {".so", ".pyd"}:
                build_data["force_include"][str(extension)] = str(extension.relative_to(built))
        info = Path(scratch, "build.json")
        info.write_text(
            json.dumps(
                {
                    "c_digest": c_digest(generated),
                    "mypy": importlib.metadata.version("mypy"),
                    "typed_against": distribution_versions(packages),
                },
                indent=2,
                sort_keys=True,
            )
        )
        build_data["force_include"][str(info)] = "hasten/build.json"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
