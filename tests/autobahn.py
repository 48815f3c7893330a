"""The Autobahn|Testsuite fuzzing client (``wstest``, Python 2.7) against hasten.

``make autobahn`` installs it in ``.autobahn/`` and runs ``python -m tests.autobahn``: every
case group the project holds itself to (1-7, 9, 10, 12, 13) against a hasten serving
``tests/apps/ws_echo.py``; it prints the verdicts and case 9's times, and fails if any case
FAILED. The suite runs a fast subset (``tests/protocols/test_websocket_autobahn.py``) when
``wstest`` is installed. ``--python`` picks the interpreter hasten runs on (the compiled
wheel's venv, say).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AUTOBAHN_DIR = ROOT / ".autobahn"
WSTEST = AUTOBAHN_DIR / "lib" / "bin" / "wstest"
ALL_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.*", "13.*"]
# What counts as passing: strict, or within what the RFC allows (NON-STRICT: a violation
# failed later than it could have; INFORMATIONAL: nothing to judge).
_PASSING = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
_PASSING_CLOSE = frozenset({"OK", "INFORMATIONAL"})


def python2() -> str | None:
    """A Python 2.7 to run wstest with: pyenv's, or one on PATH."""
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python2.7")))
    return found[-1] if found else shutil.which("python2.7")


def available() -> bool:
    return WSTEST.exists() and python2() is not None


def fuzz(
    url: str, cases: list[str], outdir: Path, exclude: list[str] | None = None
) -> dict[str, Any]:
    """Run wstest's fuzzing client on ``cases`` against ``url``; its verdict per case."""
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": "hasten", "url": url}],
        "cases": cases,
        "exclude-cases": exclude or [],
        "exclude-agent-cases": {},
    }
    outdir.mkdir(parents=True, exist_ok=True)
    spec_path = outdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    interpreter = python2()
    assert interpreter is not None
    environment = {**os.environ, "PYTHONPATH": str(AUTOBAHN_DIR / "lib")}
    subprocess.run(
        [interpreter, str(WSTEST), "-m", "fuzzingclient", "-s", str(spec_path)],
        env=environment,
        cwd=outdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    results: dict[str, Any] = json.loads((outdir / "index.json").read_text())["hasten"]
    return results


def failures(results: dict[str, Any]) -> list[str]:
    """The cases that failed, with their verdicts."""
    return [
        f"{case}: {verdict['behavior']} / close {verdict['behaviorClose']}"
        for case, verdict in sorted(results.items(), key=lambda item: _case_key(item[0]))
        if verdict["behavior"] not in _PASSING or verdict["behaviorClose"] not in _PASSING_CLOSE
    ]


def _case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _serving(python: str, port: int) -> Iterator[None]:
    argv = [python, "-m", "hasten", "tests.apps.ws_echo:app", "--port", str(port)]
    argv += ["--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(argv, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("hasten did not start") from None
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", default=sys.executable, help="the Python hasten runs on")
    parser.add_argument("--cases", nargs="*", default=ALL_CASES)
    args = parser.parse_args(argv)
    if not available():
        sys.exit("wstest is not installed: `make autobahn` installs it in .autobahn/")
    port = _free_port()
    with _serving(args.python, port):
        results = fuzz(f"ws://127.0.0.1:{port}", args.cases, AUTOBAHN_DIR / "reports")
    counts: dict[str, int] = {}
    for verdict in results.values():
        counts[verdict["behavior"]] = counts.get(verdict["behavior"], 0) + 1
    print(f"{len(results)} cases: " + ", ".join(f"{n} {b}" for b, n in sorted(counts.items())))
    for case, verdict in sorted(results.items(), key=lambda item: _case_key(item[0])):
        if case.startswith("9."):
            print(f"  {case}: {verdict['behavior']} in {verdict['duration']} ms")
    failed = failures(results)
    for line in failed:
        print(f"FAILED {line}")
    print(f"report: {AUTOBAHN_DIR / 'reports' / 'index.html'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
