"""Run the benchmark: ``python -m bench.run [--quick]`` (``make bench`` / ``make bench QUICK=1``).

Every server runs pinned to CPU 0 and every load generator (wrk, h2load and the Python
clients, including this process) to CPU 1. Within a round each scenario runs on every
server in turn, the order rotating from round to round; the report gives the medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import clients, file_load, report, websocket_load
from bench.apps.files import FILES_DIR, make_big_file
from bench.measure import CpuClock, LoadResult, Sample, parse_h2load, parse_wrk, summarise
from bench.servers import (
    BASELINE_NAME,
    CLIENT_CPU,
    GRANIAN,
    HASTEN,
    HYPERCORN,
    PEERS,
    Certificate,
    RunningServer,
    ServerSpec,
    baseline,
    self_signed_certificate,
    serving,
)
from bench.websocket_load import ExtensionRefused, WebSocketLoad

BENCH_DIR = Path(__file__).parent
RESULTS_DIR = BENCH_DIR / "results"
WEBSOCKET_MODULE = BENCH_DIR.parent / "src" / "hasten" / "protocols" / "websocket" / "handshake.py"


@dataclass(frozen=True)
class Settings:
    rounds: int
    duration: float  # seconds of measured load per run
    warmup: float  # seconds of load thrown away before each measured run
    idle_connections: int
    mode: str


FULL = Settings(rounds=3, duration=6, warmup=2, idle_connections=5000, mode="full")
QUICK = Settings(rounds=1, duration=2, warmup=1, idle_connections=5000, mode="quick")


# wsdeflate's message: 1 KiB of JSON, as compressible as an API's usually is.
WS_JSON_TEXT = json.dumps(
    [{"id": n, "name": f"user {n}", "active": n % 3 == 0, "score": n * 7 % 100} for n in range(19)]
).encode()[:1024]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    app: str
    kind: str  # wrk | idle | ws | h2 | files
    connections: int
    path: str = "/"
    lua: str | None = None
    unit: str = "req/s"
    keep_alive: int = 5
    # Per-server options a scenario needs on top of the defaults.
    server_options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    websocket: WebSocketLoad | None = None  # what a ws scenario sends
    streams: int = 1  # h2: concurrent streams per connection (h2load -m)
    tls: bool = False  # h2: over TLS, h2 chosen by ALPN, instead of prior knowledge

    def options_for(self, server: str) -> tuple[str, ...]:
        return dict(self.server_options).get(server, ())


SCENARIOS = (
    Scenario("hello", "plain ASGI, 13-byte text response", "plain:hello", "wrk", 64),
    Scenario(
        "json", "FastAPI route returning a small JSON object", "fastapi_json:app", "wrk", 64,
        path="/json",
    ),
    Scenario(
        "post4k", "4 KiB POST body echoed back (wrk lua script)", "plain:echo", "wrk", 64,
        lua="post4k.lua",
    ),
    Scenario("c1000", "hello with 1000 connections", "plain:hello", "wrk", 1000),
    Scenario("stream", "1 MiB response in 64 KiB chunks", "plain:stream", "wrk", 16),
    Scenario(
        "idle", "server RSS per idle keep-alive connection", "plain:hello", "idle", 0,
        keep_alive=300,
        # granian accepts at most --backpressure (default 1024) connections at once.
        server_options=(("granian", ("--backpressure", "16384")),),
    ),
    Scenario(
        "ws", "WebSocket echo, 16 conns x 64 pipelined 32-byte text messages", "plain:ws_echo",
        "ws", 16, unit="msgs/s", websocket=WebSocketLoad(16, 64, b"m" * 32),
    ),
    Scenario(
        "ws64k", "WebSocket echo, 16 conns x 4 pipelined 64 KiB binary messages",
        "plain:ws_echo", "ws", 16, unit="msgs/s",
        websocket=WebSocketLoad(16, 4, bytes(range(256)) * 256, binary=True),
    ),
    Scenario(
        "wsdeflate", "WebSocket echo with permessage-deflate, 16 conns x 16 pipelined 1 KiB "
        "JSON texts", "plain:ws_echo", "ws", 16, unit="msgs/s",
        websocket=WebSocketLoad(16, 16, WS_JSON_TEXT, deflate=True),
    ),
    Scenario(
        "wsbroadcast", "WebSocket broadcast: 1 sender x 4 pipelined 32-byte texts, each sent "
        "to 1000 idle listeners and the sender (rate: messages delivered)",
        "plain:ws_broadcast", "ws", 1001, unit="msgs/s",
        websocket=WebSocketLoad(1, 4, b"b" * 32, listeners=1000),
    ),
    Scenario(
        "h2", "hello over HTTP/2 prior knowledge, h2load -c8 -m32", "plain:hello", "h2", 8,
        streams=32,
    ),
    Scenario(
        "h2c100", "hello over HTTP/2 prior knowledge, h2load -c100 -m10", "plain:hello", "h2",
        100, streams=10,
    ),
    Scenario(
        "h2big", "1 MiB response (one body message) over HTTP/2 prior knowledge, h2load -c8 -m4",
        "plain:big", "h2", 8, streams=4,
    ),
    Scenario(
        "h2tls", "hello over HTTP/2 over TLS (ALPN h2, self-signed certificate), h2load -c8 -m32",
        "plain:hello", "h2", 8, streams=32, tls=True,
    ),
    Scenario(
        "file", "64 MiB file, Starlette FileResponse (pathsend where offered), 4 conns",
        "files:app", "files", 4, path="/big.bin", unit="files/s",
    ),
    Scenario(
        "static", "64 MiB file from the server's static mount (uvicorn: Starlette "
        "StaticFiles), 4 conns", "files:app", "files", 4, path="/static/big.bin",
        unit="files/s",
        server_options=tuple(
            (name, ("--static-path-route", "/static", "--static-path-mount", str(FILES_DIR)))
            for name in (HASTEN.name, BASELINE_NAME, GRANIAN.name)
        ),
    ),
)  # fmt: skip


def peers_for(scenario: Scenario, extra: tuple[ServerSpec, ...] = ()) -> tuple[ServerSpec, ...]:
    if scenario.kind == "h2" and importlib.util.find_spec("hypercorn") is not None:
        return (*PEERS, *extra, HYPERCORN)
    return (*PEERS, *extra)


class PeakRss:
    """Samples a server's RSS every 100 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.peak = server.rss_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.server.rss_kb())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss_kb())


def run_wrk(scenario: Scenario, port: int, duration: float) -> LoadResult:
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{scenario.connections}"]
    argv += [f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s"]
    if scenario.lua:
        argv += ["-s", str(BENCH_DIR / "wrk" / scenario.lua)]
    argv.append(f"http://127.0.0.1:{port}{scenario.path}")
    clock = CpuClock.of_children()
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=duration + 60)
    return dataclasses.replace(parse_wrk(done.stdout), client_cpu=clock.share())


def h2load_argv(scenario: Scenario, port: int, duration: float, warmup: float) -> list[str]:
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", "-t1", f"-c{scenario.connections}"]
    argv += [f"-m{scenario.streams}", f"-D{max(1, round(duration))}"]
    argv.append(f"--warm-up-time={max(1, round(warmup))}")
    scheme = "https" if scenario.tls else "http"
    return [*argv, f"{scheme}://127.0.0.1:{port}{scenario.path}"]


def run_h2load(scenario: Scenario, port: int, duration: float, warmup: float) -> LoadResult:
    argv = h2load_argv(scenario, port, duration, warmup)
    clock = CpuClock.of_children()
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=duration + 60)
    return dataclasses.replace(parse_h2load(done.stdout), client_cpu=clock.share())


def check_answers(port: int, path: str) -> None:
    """One GET before the load, so a misconfigured server fails loudly instead of fast."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET %b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
        head = clients.read_response(sock)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {path} answered {head[:60]!r}")


def measure(
    scenario: Scenario, spec: ServerSpec, settings: Settings, certificate: Certificate | None
) -> Sample:
    options = scenario.options_for(spec.name)
    served_with = certificate if scenario.tls else None
    with serving(spec, scenario.app, scenario.keep_alive, options, served_with) as server:
        if scenario.kind == "ws":
            if spec is HASTEN and not WEBSOCKET_MODULE.exists():
                return Sample(skipped="not supported yet")
            if not clients.probe_websocket(server.port):
                return Sample(skipped="not supported yet" if spec is HASTEN else "no upgrade")
        if scenario.kind == "h2" and scenario.tls:
            if not clients.probe_http2_over_tls(server.port):
                return Sample(skipped="no HTTP/2 over TLS (ALPN did not pick h2)")
        elif scenario.kind == "h2" and not clients.probe_http2(server.port):
            return Sample(skipped="no HTTP/2 prior knowledge")
        if scenario.kind in ("wrk", "idle", "files"):
            check_answers(server.port, scenario.path)
        measure_kind = _MEASURES[scenario.kind]
        sample = measure_kind(scenario, server, settings)
        if server.process.poll() is not None:
            raise RuntimeError(f"{spec.name} died during {scenario.name}:\n{server.output()}")
        return sample


def _measure_wrk(scenario: Scenario, server: RunningServer, settings: Settings) -> Sample:
    run_wrk(scenario, server.port, settings.warmup)
    return _measured(server, lambda: run_wrk(scenario, server.port, settings.duration))


def _measure_files(scenario: Scenario, server: RunningServer, settings: Settings) -> Sample:
    return _measured(
        server,
        lambda: file_load.run(
            server.port, scenario.path, scenario.connections, settings.warmup, settings.duration
        ),
    )


def _measured(server: RunningServer, load: Callable[[], LoadResult]) -> Sample:
    """One measured run of ``load``, with the server's peak RSS and its growth over it."""
    before = server.rss_kb()
    with PeakRss(server) as rss:
        result = load()
    return Sample(
        rate=result.rate,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        rss_kb=rss.peak,
        errors=result.errors,
        rss_growth_kb=rss.peak - before,
        client_cpu=result.client_cpu,
    )


def _measure_idle(scenario: Scenario, server: RunningServer, settings: Settings) -> Sample:
    warm = dataclasses.replace(scenario, connections=64)
    run_wrk(warm, server.port, 1)
    time.sleep(0.5)  # let the warm-up connections close
    before = server.rss_kb()
    sockets = clients.open_idle_connections(server.port, settings.idle_connections)
    try:
        time.sleep(0.5)
        after = server.rss_kb()
    finally:
        clients.close_all(sockets)
    return Sample(
        rss_kb=after,
        per_conn_bytes=(after - before) * 1024 / settings.idle_connections,
    )


def _measure_ws(scenario: Scenario, server: RunningServer, settings: Settings) -> Sample:
    load = scenario.websocket
    assert load is not None
    try:
        with PeakRss(server) as rss:
            result, per_listener = websocket_load.run(
                server.port, load, settings.warmup, settings.duration, server.rss_kb
            )
    except ExtensionRefused as refused:
        return Sample(skipped=str(refused))
    return Sample(
        rate=result.rate,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        rss_kb=rss.peak,
        per_conn_bytes=per_listener,
        client_cpu=result.client_cpu,
        notes=["ws p50/p99: round trip of a sender's batch"],
    )


def _measure_h2(scenario: Scenario, server: RunningServer, settings: Settings) -> Sample:
    with PeakRss(server) as rss:
        result = run_h2load(scenario, server.port, settings.duration, settings.warmup)
    return Sample(
        rate=result.rate,
        rss_kb=rss.peak,
        errors=result.errors,
        client_cpu=result.client_cpu,
        notes=[f"TLS: {result.tls}"] if result.tls else [],
    )


_MEASURES: dict[str, Callable[[Scenario, RunningServer, Settings], Sample]] = {
    "wrk": _measure_wrk,
    "files": _measure_files,
    "idle": _measure_idle,
    "ws": _measure_ws,
    "h2": _measure_h2,
}


def rotated(items: tuple[ServerSpec, ...], by: int) -> Iterator[ServerSpec]:
    for index in range(len(items)):
        yield items[(index + by) % len(items)]


def ensure_tools() -> None:
    tools = ("wrk", "h2load", "taskset", "openssl")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (make bench installs them)")
    if len(os.sched_getaffinity(0) | {0, 1}) < 2 or (os.cpu_count() or 1) < 2:
        sys.exit("the benchmark pins servers and load generators to CPUs 0 and 1: needs 2 CPUs")


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for package in (
        "hasten", "uvicorn", "granian", "hypercorn", "httptools", "uvloop", "fastapi",
        "starlette", "websockets",
    ):  # fmt: skip
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    tools = []
    for argv in (["wrk", "-v"], ["h2load", "--version"]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        tools.append((done.stdout or done.stderr).splitlines()[0].split(" Copyright")[0])
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": ", ".join(versions),
        "tools": ", ".join(tools),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_report(
    summary: dict[str, dict[str, Sample]],
    checks: list[report.Check],
    against_baseline: list[str],
    info: dict[str, str],
    settings: Settings,
    elapsed: float,
) -> None:
    units = {s.name: s.unit for s in SCENARIOS}
    how = (
        f"{settings.rounds} round(s); each measured run {settings.duration:g} s after a "
        f"{settings.warmup:g} s warm-up; medians over rounds"
    )
    lines = [
        "# Benchmark results",
        "",
        f"- **Mode:** {settings.mode} ({how}); the whole run took {elapsed / 60:.1f} min.",
    ]
    if settings.mode != "full":
        lines.append(
            "- **This is a QUICK run** (one round, short runs): it proves the harness works; "
            "its numbers are noisy and are not the project's measured results."
        )
    lines += [
        f"- **Date:** {info['date']}",
        f"- **Machine:** {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, "
        f"Python {info['python']}",
        f"- **Packages:** {info['packages']}",
        f"- **Load generators:** {info['tools']}, and Python clients for `idle` and `ws*`",
        "",
        "## How it was measured",
        "",
        "- Each server runs as one process pinned to CPU 0 (`taskset -c 0`); the load",
        "  generator runs on CPU 1. Servers alternate within a round (the order rotates",
        "  between rounds) and each is started afresh for every scenario.",
        "- Access logs are off on every server (`--no-access-log` for hasten, uvicorn and",
        "  granian; hypercorn logs no access by default), log level `warning`.",
        "- hasten: `--loop uvloop`; uvicorn: `--loop uvloop --http httptools`; granian:",
        "  `--interface asgi --workers 1`; hypercorn (the h2 rows only): `--worker-class uvloop`.",
        "- `wrk -t1 -cN --latency` gives req/s and p50/p99; peak RSS is sampled from",
        "  /proc/PID/status every 100 ms (summed over the server's processes).",
        "- `idle`: after a warm-up, the client opens "
        f"{settings.idle_connections} keep-alive connections, sends one request on each and",
        "  reads the answer, then the server's RSS growth is divided by the connection count.",
        "- `ws*`: a uvloop client on pre-built masked frames: each sending connection writes",
        "  its batch again as soon as the echo of the last one is in, and counts the echo in",
        "  bytes (deflate's echoes by their frame headers), never parsing a message; p50/p99",
        "  are batch round trips. `wsbroadcast` opens 1000 listeners, then the sender; its",
        "  rate is messages delivered to all, and its KB/conn the server's RSS growth per",
        "  idle open WebSocket (before the load).",
        "- `h2*`: `h2load -t1` (no percentiles: h2load prints none), with prior knowledge:",
        "  `h2` 8 connections x 32 concurrent streams, `h2c100` 100 x 10, `h2big` a 1 MiB",
        "  response (one body message) at 8 x 4; `h2tls` is `h2` over TLS, h2 chosen by",
        "  ALPN, each server given the same self-signed certificate (`openssl req`, made for",
        "  the run; h2load verifies none) by its own options and negotiating its own default",
        "  cipher (the Notes list them). uvicorn has no HTTP/2: its cells say why. The chart",
        "  plots these rows against granian, with hypercorn, which uses the h2 library.",
        "- `file`, `static`: 4 keep-alive connections downloading a 64 MiB file of random",
        "  bytes, one thread each, reading only the response head: the body is spliced from",
        "  the socket through a pipe into /dev/null (`bench/file_load.py`), so the client",
        "  never copies or even reads the bytes (wrk's copy of every byte saturates its core",
        "  first, and on one machine costs most against a server that uses sendfile). `static`",
        "  is the server's own static mount (`--static-path-mount`) where it has one,",
        "  Starlette's `StaticFiles` on uvicorn. Peak RSS is the run's; the targets want it flat.",
        "- **client CPU** is the load generator's CPU time over the measured run's wall time",
        "  (its rusage: wrk's and h2load's as a waited-for child, the Python clients' own).",
        "  Every generator is single-threaded on CPU 1, so near 100% it is saturated and the",
        "  rate measures the client, not the server: such a row's ratio means nothing.",
        "",
        "## Scenarios",
        "",
    ]
    lines += [f"- `{s.name}`: {s.description}" for s in SCENARIOS]
    lines += ["", "## Results (medians)", "", *report.results_table(summary, units), ""]
    notes = report.notes_lines(summary)
    if notes:
        lines += ["## Notes", "", *notes, ""]
    lines += ["## Targets", "", "```", *(check.line() for check in checks), "```", ""]
    if against_baseline:
        lines += [
            f"## Against the baseline ({info.get('baseline', BASELINE_NAME)})",
            "",
            "The same scenarios on another build of hasten, in the same rounds:",
            "",
            "```",
            *against_baseline,
            "```",
            "",
        ]
    lines += ["![hasten vs uvicorn vs granian](latest.png)", ""]
    (RESULTS_DIR / "latest.md").write_text("\n".join(lines))


def collect(
    settings: Settings,
    scenarios: list[Scenario],
    extra: tuple[ServerSpec, ...] = (),
    certificate: Certificate | None = None,
) -> dict[str, dict[str, list[Sample]]]:
    """Every round of every scenario on every server: the raw samples (TLS scenarios are
    served with ``certificate``)."""
    samples: dict[str, dict[str, list[Sample]]] = {
        s.name: {spec.name: [] for spec in peers_for(s, extra)} for s in scenarios
    }
    for round_index in range(settings.rounds):
        for scenario in scenarios:
            for spec in rotated(peers_for(scenario, extra), round_index):
                try:
                    sample = measure(scenario, spec, settings, certificate)
                except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                    sample = Sample(skipped=f"error: {str(exc).splitlines()[0][:80]}")
                samples[scenario.name][spec.name].append(sample)
                where = f"round {round_index + 1} {scenario.name:11} {spec.name:9}"
                print(f"  {where} {_brief(sample)}", flush=True)
    return samples


def publish(
    samples: dict[str, dict[str, list[Sample]]],
    info: dict[str, str],
    settings: Settings,
    elapsed: float,
    write: bool = True,
) -> None:
    """Print the target lines; write latest.md, latest.png and latest.json."""
    summary = {
        scenario: {server: summarise(runs) for server, runs in by_server.items()}
        for scenario, by_server in samples.items()
    }
    checks = report.check_targets(summary)
    for check in checks:
        print(check.line())
    against_baseline = report.baseline_lines(summary, BASELINE_NAME)
    for line in against_baseline:
        print(line)
    if not write:
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    write_report(summary, checks, against_baseline, info, settings, elapsed)
    mode = "full run" if settings.mode == "full" else "QUICK run (noisy placeholder)"
    report.draw_chart(
        summary,
        str(RESULTS_DIR / "latest.png"),
        f"{mode}, {info['date']}, {info['cpu']} ({info['cores']} cores), Python {info['python']}",
    )
    raw = {s: {k: [dataclasses.asdict(x) for x in v] for k, v in by.items()}
           for s, by in samples.items()}  # fmt: skip
    document = {"machine": info, "settings": dataclasses.asdict(settings), "elapsed": elapsed}
    (RESULTS_DIR / "latest.json").write_text(json.dumps({**document, "samples": raw}, indent=1))
    print(f"wrote {RESULTS_DIR / 'latest.md'}, latest.png and latest.json")


def render_again(write: bool = True) -> None:
    """Rebuild latest.md and latest.png from latest.json (after a change to the report);
    without ``write``, only print the target lines."""
    document = json.loads((RESULTS_DIR / "latest.json").read_text())
    samples = {
        scenario: {server: [Sample(**x) for x in runs] for server, runs in by_server.items()}
        for scenario, by_server in document["samples"].items()
    }
    settings = Settings(**document["settings"])
    publish(samples, document["machine"], settings, document["elapsed"], write)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short round (< 3 min)")
    parser.add_argument("--only", nargs="*", help="run only these scenarios")
    parser.add_argument("--no-write", action="store_true", help="don't write results/")
    parser.add_argument(
        "--render", action="store_true", help="only rebuild latest.md/.png from latest.json"
    )
    parser.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="also run the hasten this Python has installed, as hasten-base (an A/B)",
    )
    parser.add_argument(
        "--baseline-name", default="", help="what the baseline is (a git revision), for the report"
    )
    args = parser.parse_args(argv)
    if args.render:
        render_again(write=not args.no_write)
        return 0
    settings = QUICK if args.quick else FULL
    ensure_tools()
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    clients.raise_open_file_limit(settings.idle_connections * 2 + 4096)
    scenarios = [s for s in SCENARIOS if not args.only or s.name in args.only]
    if any(s.name in report.FILE_SCENARIOS for s in scenarios):
        make_big_file()  # before any server starts: a static mount must exist
    info = machine_info()
    # Absolute: the servers run from bench/apps.
    extra = (baseline(os.path.abspath(args.baseline)),) if args.baseline else ()
    if args.baseline:
        info["baseline"] = args.baseline_name or args.baseline
    print(f"bench: {settings.mode} mode on {info['cpu']}, Python {info['python']}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hasten-bench-tls-") as tls_dir:
        certificate = self_signed_certificate(tls_dir) if any(s.tls for s in scenarios) else None
        samples = collect(settings, scenarios, extra, certificate)
    elapsed = time.monotonic() - started
    print(f"bench: done in {elapsed / 60:.1f} min")
    publish(samples, info, settings, elapsed, write=not args.no_write)
    return 0


def _brief(sample: Sample) -> str:
    if sample.skipped:
        return f"skipped: {sample.skipped}"
    if sample.rate is None and sample.per_conn_bytes is not None:
        return f"{sample.per_conn_bytes / 1024:.2f} KB/conn"
    parts = [f"{sample.rate:,.0f}/s" if sample.rate is not None else "—"]
    if sample.p99_ms is not None:
        parts.append(f"p50 {sample.p50_ms:.2f} ms p99 {sample.p99_ms:.2f} ms")
    parts.append(f"rss {(sample.rss_kb or 0) / 1024:.1f} MiB")
    if sample.per_conn_bytes is not None:
        parts.append(f"{sample.per_conn_bytes / 1024:.2f} KB/conn")
    if sample.client_cpu is not None:
        parts.append(f"client CPU {sample.client_cpu:.0%}")
    if sample.errors:
        parts.append(f"errors {sample.errors}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
