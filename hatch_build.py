"""Hatchling build hook: wheels carry hasten's protocol modules compiled with mypyc.

The request hot path is plain, fully typed Python; mypyc turns it into a C extension with
the same behaviour (callgrind: a third fewer instructions per HTTP/1.1 request), and the
``.py`` files ship beside it. ``HASTEN_COMPILE`` chooses:

- ``auto`` (default): compile on CPython; if that fails (no C compiler), build a pure-Python
  wheel and say so;
- ``always``: compile or fail the build (``make test`` and ``make bench`` use this);
- ``never``: a pure-Python wheel.

Editable installs are never compiled, so that an edit to a ``.py`` file takes effect at once.
"""

from __future__ import annotations

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
    "src/hasten/protocols/h1_checks.py",
    "src/hasten/protocols/h1_cycle.py",
    "src/hasten/protocols/http1.py",
    "src/hasten/protocols/http2.py",
    "src/hasten/protocols/http2_stream.py",
    "src/hasten/protocols/http2_websocket.py",
    "src/hasten/protocols/websocket.py",
    "src/hasten/protocols/websocket_connection.py",
)

# Run in a scratch directory so that setuptools never reads this project's pyproject.toml.
# Third-party modules are typed from their stubs when the build environment has them and
# are Any otherwise: either way the compiled code calls them as Python objects.
_SETUP_SCRIPT = """\
from setuptools import setup
from mypyc.build import mypycify

SOURCES = {sources!r}
setup(
    name="hasten-compiled",
    ext_modules=mypycify(["--ignore-missing-imports", *SOURCES], group_name="hasten"),
)
"""


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
        scratch = self._scratch = tempfile.mkdtemp(prefix="hasten-mypyc-")
        built = Path(scratch, "lib")
        sources = [str(Path(self.root, module)) for module in COMPILED_MODULES]
        Path(scratch, "setup.py").write_text(_SETUP_SCRIPT.format(sources=sources))
        command = [
            sys.executable,
            "setup.py",
            "build_ext",
            "--build-lib",
            str(built),
            "--build-temp",
            str(Path(scratch, "temp")),
        ]
        result = subprocess.run(
            command, cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
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
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
