"""Profile hasten's hot path under the ``hello`` load: ``python -m bench.profile``.

hasten runs pinned to CPU 0 under ``wrk -c64`` on CPU 1 while py-spy samples it; the
top functions by own time and by inclusive time go to ``results/profile-hello.txt``.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from bench.servers import CLIENT_CPU, HASTEN, serving

RESULTS_DIR = Path(__file__).parent / "results"
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """``"data_received (.../hasten/protocols/http1/connection.py:301)"`` ->
    ``"data_received (protocols/http1/connection.py)"``.

    Line numbers are dropped so that one function's samples add up; hasten's files keep
    their path in the package (``connection.py`` alone could be any protocol's), others
    only their name.
    """
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    _, inside, rest = path.rpartition("hasten/")
    return f"{match['function']} ({rest if inside else os.path.basename(path)})"


def top_functions(
    collapsed: Iterable[str],
) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Own-time and inclusive sample counts per function from collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread (")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return own, inclusive, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    with serving(HASTEN, "plain:hello") as server, tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "hello.raw"
        wrk = subprocess.Popen(
            ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c64", f"-d{args.duration + 3}s",
             f"http://127.0.0.1:{server.port}/"],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        subprocess.run(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.pid),
             "--duration", str(args.duration), "--rate", "250", "--nonblocking",
             "--format", "raw", "--output", str(raw)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        wrk_output, _ = wrk.communicate()
        own, inclusive, total = top_functions(raw.read_text().splitlines())
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"py-spy, {args.duration} s of hasten under wrk -c64 on the hello app; {total} samples",
        f"{when}, Python {platform.python_version()}; own time of a Python function includes",
        "the C calls it makes (transport.write's syscall shows up in its caller)",
    ]
    rps = re.search(r"Requests/sec:\s+(\S+)", wrk_output)
    lines.append(f"(with the sampler attached: {rps.group(1) if rps else '?'} req/s)")
    for title, counter in (("own time", own), ("inclusive time", inclusive)):
        lines += ["", f"top {args.top} by {title}:"]
        # Frames on every sample (the CLI and the event loop's entry) say nothing: skip them.
        spine = max(counter.values(), default=0) if counter is inclusive else total + 1
        shown = [(n, c) for n, c in counter.most_common() if c < spine]
        for name, count in shown[: args.top]:
            lines.append(f"{100 * count / max(total, 1):6.1f}%  {name}")
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "profile-hello.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
