"""Turning summarised samples into target checks, ``latest.md`` and ``latest.png``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench.measure import Sample, ratio

Results = Mapping[str, Mapping[str, Sample]]  # scenario -> server -> median sample

# The stream scenario is "no worse than uvicorn" within this much run-to-run noise.
STREAM_NOISE = 0.95
# "Memory flat": RSS may grow this much while 1 MiB responses stream (after a warm-up).
STREAM_FLAT_KB = 8 * 1024
IDLE_LIMIT_BYTES = 3 * 1024
# Issue 17's file targets: 64 MiB files, four at a time, each far larger than this growth.
FILE_SCENARIOS = ("file", "static")
FILE_FLAT_KB = 16 * 1024


@dataclass(frozen=True)
class Check:
    """One target line: PASS, FAIL or SKIP, and the numbers behind it."""

    status: str
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status} {self.name}: {self.detail}"


def _fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _ran(results: Results, scenario: str, server: str) -> Sample | None:
    sample = results.get(scenario, {}).get(server)
    return None if sample is None or sample.skipped else sample


def _verdict(name: str, passed: bool, detail: str) -> Check:
    return Check("PASS" if passed else "FAIL", name, detail)


def _rate_check(results: Results, scenario: str, peer: str, target: float, name: str = "") -> Check:
    name = name or f"{scenario} >= {target}x {peer}"
    ours, theirs = _ran(results, scenario, "hasten"), _ran(results, scenario, peer)
    value = ratio(ours.rate if ours else None, theirs.rate if theirs else None)
    if ours and ours.rate and theirs and theirs.rate == 0:
        # A peer that stalls (hypercorn under h2load -m32 after ~3,000 requests) has no rate
        # to compare with; any multiple of 0 would be a meaningless PASS.
        return Check("SKIP", name, f"{peer} completed no request in the measured runs")
    if ours and ours.rate and theirs and theirs.errors:
        # Nor does a peer whose requests failed (hypercorn again: a few hundred requests,
        # then the rest of its streams erroring): its rate measures a breakdown.
        return Check(
            "SKIP",
            name,
            f"{peer} failed {theirs.errors} requests ({theirs.rate:,.0f}/s): no yardstick",
        )
    if value is None:
        reason = results.get(scenario, {}).get("hasten")
        return Check("SKIP", name, reason.skipped if reason and reason.skipped else "no result")
    return _verdict(name, value >= target, f"measured {value:.2f}x")


def _lower_check(results: Results, scenario: str, field: str, name: str, unit: str) -> Check:
    """PASS if hasten's ``field`` is below uvicorn's in ``scenario``."""
    ours, theirs = _ran(results, scenario, "hasten"), _ran(results, scenario, "uvicorn")
    mine = getattr(ours, field) if ours else None
    peer = getattr(theirs, field) if theirs else None
    if mine is None or peer is None:
        return Check("SKIP", name, f"no {field} for both")
    return _verdict(name, mine < peer, f"{unit.format(mine)} vs {unit.format(peer)}")


def check_targets(results: Results) -> list[Check]:
    """The targets of issues 3 and 6, evaluated on one run's medians."""
    checks = [
        _rate_check(results, "hello", "uvicorn", 1.8),
        _rate_check(results, "hello", "granian", 1.3),
        _rate_check(results, "json", "uvicorn", 1.25),
        _rate_check(results, "post4k", "uvicorn", 1.4),
        _rate_check(results, "c1000", "uvicorn", 2.0),
    ]
    checks.append(
        _lower_check(results, "c1000", "p99_ms", "c1000 p99 lower than uvicorn", "{:.2f} ms")
    )
    idle = _ran(results, "idle", "hasten")
    name = "idle <= 3 KB per connection"
    if idle and idle.per_conn_bytes is not None:
        detail = f"measured {idle.per_conn_bytes / 1024:.2f} KB"
        checks.append(_verdict(name, idle.per_conn_bytes <= IDLE_LIMIT_BYTES, detail))
    else:
        checks.append(Check("SKIP", name, "not measured"))
    checks.append(
        _rate_check(
            results,
            "stream",
            "uvicorn",
            STREAM_NOISE,
            f"stream no worse than uvicorn (>= {STREAM_NOISE}x, run-to-run noise)",
        )
    )
    checks.append(_flat_memory_check(results, "stream", STREAM_FLAT_KB))
    # Issue 18's WebSocket targets.
    checks.append(_rate_check(results, "ws", "uvicorn", 1.5))
    checks.append(_rate_check(results, "ws64k", "uvicorn", 1.3))
    checks.append(_rate_check(results, "wsdeflate", "uvicorn", 1.3))
    name = "idle WebSocket memory per connection lower than uvicorn"
    checks.append(_lower_check(results, "wsbroadcast", "per_conn_bytes", name, "{:.0f} B"))
    h2 = _ran(results, "h2", "hasten")
    if h2 is None:
        skipped = results.get("h2", {}).get("hasten")
        reason = skipped.skipped if skipped and skipped.skipped else "not run"
        checks.append(Check("SKIP", "h2 0 failed", reason))
    else:
        checks.append(_verdict("h2 0 failed", h2.errors == 0, f"{h2.errors} failed"))
    # Issue 6's HTTP/2 target; hypercorn is the peer that shares the h2 library.
    checks.append(_rate_check(results, "h2", "hypercorn", 10.0))
    # Issue 17: a 64 MiB file at >= 2x uvicorn and >= granian, with flat memory.
    for scenario in FILE_SCENARIOS:
        checks.append(_rate_check(results, scenario, "uvicorn", 2.0))
        checks.append(_rate_check(results, scenario, "granian", 1.0))
        checks.append(_flat_memory_check(results, scenario, FILE_FLAT_KB))
    return checks


def _flat_memory_check(results: Results, scenario: str, limit_kb: int) -> Check:
    """Whether hasten's peak RSS grew at most ``limit_kb`` over the scenario's load."""
    served = _ran(results, scenario, "hasten")
    name = f"{scenario} memory flat (RSS growth <= {limit_kb // 1024} MiB)"
    if served is None or served.rss_growth_kb is None:
        return Check("SKIP", name, "not measured")
    detail = f"grew {served.rss_growth_kb / 1024:.1f} MiB"
    return _verdict(name, served.rss_growth_kb <= limit_kb, detail)


def baseline_lines(results: Results, baseline: str) -> list[str]:
    """hasten against the baseline build, per scenario: rate ratio (idle: memory ratio)."""
    lines = []
    for scenario in results:
        ours, base = _ran(results, scenario, "hasten"), _ran(results, scenario, baseline)
        if ours is None or base is None:
            continue
        if scenario == "idle":
            value = ratio(ours.per_conn_bytes, base.per_conn_bytes)
            what = "memory per connection"
        else:
            value = ratio(ours.rate, base.rate)
            what = "rate"
        lines.append(f"{scenario}: hasten {what} {_fmt_ratio(value)} of {baseline}'s")
    return lines


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def results_table(results: Results, units: Mapping[str, str]) -> list[str]:
    """Markdown rows: one per scenario and server."""
    rows = [
        "| scenario | server | rate | p50 ms | p99 ms | peak RSS MiB | errors | client CPU "
        "| vs uvicorn | vs granian |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario, by_server in results.items():
        uvicorn, granian = by_server.get("uvicorn"), by_server.get("granian")
        for server, sample in by_server.items():
            if sample.skipped:
                rows.append(f"| {scenario} | {server} | skipped: {sample.skipped} ||||||||")
                continue
            if scenario == "idle":
                rate = _cell(
                    None if sample.per_conn_bytes is None else sample.per_conn_bytes / 1024,
                    ".2f",
                )
                rate += " KB/conn"
                vs_u = ratio(sample.per_conn_bytes, uvicorn.per_conn_bytes if uvicorn else None)
                vs_g = ratio(sample.per_conn_bytes, granian.per_conn_bytes if granian else None)
            else:
                rate = f"{_cell(sample.rate, ',.0f')} {units.get(scenario, 'req/s')}"
                if sample.per_conn_bytes is not None:
                    rate += f" ({sample.per_conn_bytes / 1024:.2f} KB/conn idle)"
                vs_u = ratio(sample.rate, uvicorn.rate if uvicorn else None)
                vs_g = ratio(sample.rate, granian.rate if granian else None)
            rss = None if sample.rss_kb is None else sample.rss_kb / 1024
            rows.append(
                f"| {scenario} | {server} | {rate} | {_cell(sample.p50_ms, '.2f')} "
                f"| {_cell(sample.p99_ms, '.2f')} | {_cell(rss, '.1f')} | {sample.errors} "
                f"| {_cell(sample.client_cpu, '.0%')} "
                f"| {_fmt_ratio(vs_u) if server == 'hasten' else ''} "
                f"| {_fmt_ratio(vs_g) if server == 'hasten' else ''} |"
            )
    return rows


def draw_chart(results: Results, path: str, subtitle: str) -> None:
    """Grouped bars: throughput relative to uvicorn, and idle memory per connection."""
    import matplotlib  # noqa: PLC0415 -- only the bench venv has it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    servers = ["hasten", "uvicorn", "granian"]
    colours = {"hasten": "#d1495b", "uvicorn": "#00798c", "granian": "#edae49"}
    rated = [
        s
        for s, by_server in results.items()
        if s != "idle" and by_server.get("uvicorn") and by_server["uvicorn"].rate
    ]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [4, 1.3]}
    )
    width = 0.8 / len(servers)
    for index, server in enumerate(servers):
        values = []
        for scenario in rated:
            sample = results[scenario].get(server)
            values.append(
                ratio(sample.rate if sample else None, results[scenario]["uvicorn"].rate) or 0
            )
        xs = [i + (index - 1) * width for i in range(len(rated))]
        bars = left.bar(xs, values, width, label=server, color=colours[server])
        for bar, value in zip(bars, values, strict=True):
            left.annotate(
                f"{value:.2f}" if value else "n/a",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    left.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    left.set_xticks(range(len(rated)), rated)
    left.set_ylabel("throughput relative to uvicorn (higher is better)")
    left.legend(loc="upper right")
    left.set_title("Throughput (median of rounds)")
    idle = results.get("idle", {})
    idle_values = [
        (idle[s].per_conn_bytes or 0) / 1024 if idle.get(s) and not idle[s].skipped else 0
        for s in servers
    ]
    bars = right.bar(servers, idle_values, color=[colours[s] for s in servers])
    for bar, value in zip(bars, idle_values, strict=True):
        right.annotate(
            f"{value:.1f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    right.set_ylabel("KB of server RSS per connection (lower is better)")
    right.set_title("Idle keep-alive connection")
    fig.suptitle(f"hasten vs uvicorn vs granian — {subtitle}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
