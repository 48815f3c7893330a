"""Turning summarised samples into target checks, ``latest.md`` and ``latest.png``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
# Issue 16's HTTP/2 rows. uvicorn has no HTTP/2, so they are measured against granian; the
# last, over TLS, is reported with no target.
H2_SCENARIOS = ("h2", "h2c100", "h2big", "h2tls")
H2_TARGETS = ("h2", "h2c100", "h2big")


@dataclass(frozen=True)
class Check:
    """One target line: PASS, FAIL or SKIP (INFO: a figure reported, with no target), and the
    numbers behind it."""

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
    checks += [_no_failures_check(results, scenario) for scenario in H2_SCENARIOS]
    # Issue 6's HTTP/2 target; hypercorn is the peer that shares the h2 library.
    checks.append(_rate_check(results, "h2", "hypercorn", 10.0))
    # Issue 16: HTTP/2 as fast as a Rust server.
    checks += [_rate_check(results, scenario, "granian", 1.0) for scenario in H2_TARGETS]
    over_tls = _rate_check(results, "h2tls", "granian", 1.0, "h2tls vs granian (reported)")
    checks.append(
        over_tls if over_tls.status == "SKIP" else dataclasses.replace(over_tls, status="INFO")
    )
    # Issue 17: a 64 MiB file at >= 2x uvicorn and >= granian, with flat memory.
    for scenario in FILE_SCENARIOS:
        checks.append(_rate_check(results, scenario, "uvicorn", 2.0))
        checks.append(_rate_check(results, scenario, "granian", 1.0))
        checks.append(_flat_memory_check(results, scenario, FILE_FLAT_KB))
    return checks


def _no_failures_check(results: Results, scenario: str) -> Check:
    """Whether every request hasten was sent in ``scenario`` succeeded."""
    name = f"{scenario} 0 failed"
    served = _ran(results, scenario, "hasten")
    if served is None:
        skipped = results.get(scenario, {}).get("hasten")
        return Check("SKIP", name, skipped.skipped if skipped and skipped.skipped else "not run")
    return _verdict(name, served.errors == 0, f"{served.errors} failed")


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


def notes_lines(results: Results) -> list[str]:
    """The samples' notes as markdown items: a note every server of a row has once for the
    row, any other for its server (over TLS: the version and cipher each one negotiated)."""
    lines = []
    for scenario, by_server in results.items():
        ran = {server: sample for server, sample in by_server.items() if not sample.skipped}
        if not ran:
            continue
        shared = set.intersection(*(set(sample.notes) for sample in ran.values()))
        lines += [f"- `{scenario}`: {note}" for note in sorted(shared)]
        for server, sample in ran.items():
            lines += [f"- `{scenario}`, {server}: {n}" for n in sample.notes if n not in shared]
    return lines


@dataclass(frozen=True)
class Bar:
    """One server's rate in one scenario, relative to the panel's yardstick server."""

    value: float  # 0 when there is nothing to compare
    label: str  # the ratio, "n/a" or "skipped", and failed requests if any


@dataclass(frozen=True)
class Panel:
    """One chart panel: grouped bars of rates relative to one server."""

    title: str
    yardstick: str
    scenarios: list[str]
    bars: dict[str, list[Bar]]  # server -> one bar per scenario


CHART_COLOURS = {
    "hasten": "#d1495b",
    "uvicorn": "#00798c",
    "granian": "#edae49",
    "hypercorn": "#66a182",
}


def _bar(results: Results, scenario: str, server: str, yardstick: str) -> Bar:
    sample = results[scenario].get(server)
    if sample is None or sample.skipped:
        return Bar(0.0, "skipped" if sample else "n/a")
    value = ratio(sample.rate, results[scenario][yardstick].rate)
    label = "n/a" if value is None else f"{value:.2f}"
    if sample.errors:
        label += f"\n{sample.errors:,} failed"
    return Bar(value or 0.0, label)


def _panel(
    results: Results, title: str, yardstick: str, servers: tuple[str, ...], scenarios: list[str]
) -> Panel:
    present = [name for name in servers if any(name in results[s] for s in scenarios)]
    bars = {name: [_bar(results, s, name, yardstick) for s in scenarios] for name in present}
    return Panel(title, yardstick, scenarios, bars)


def throughput_panels(results: Results) -> list[Panel]:
    """The chart's throughput panels: every row uvicorn ran relative to uvicorn; the HTTP/2
    rows, which uvicorn cannot serve, relative to granian, hypercorn beside them, so that the
    rows where hasten loses are on the chart too."""

    def rated_by(yardstick: str, scenario: str) -> bool:
        sample = results[scenario].get(yardstick)
        return sample is not None and bool(sample.rate)

    panels = []
    against_uvicorn = [
        s for s in results if s != "idle" and s not in H2_SCENARIOS and rated_by("uvicorn", s)
    ]
    if against_uvicorn:
        title = "Throughput relative to uvicorn (median of rounds)"
        servers = ("hasten", "uvicorn", "granian")
        panels.append(_panel(results, title, "uvicorn", servers, against_uvicorn))
    h2 = [s for s in results if s in H2_SCENARIOS and rated_by("granian", s)]
    if h2:
        title = "HTTP/2 throughput relative to granian (uvicorn has no HTTP/2)"
        servers = ("hasten", "granian", "hypercorn")
        panels.append(_panel(results, title, "granian", servers, h2))
    return panels


def _draw_panel(axes: Any, panel: Panel) -> None:
    width = 0.8 / len(panel.bars)
    for index, (server, bars) in enumerate(panel.bars.items()):
        offset = (index - (len(panel.bars) - 1) / 2) * width
        xs = [i + offset for i in range(len(panel.scenarios))]
        drawn = axes.bar(
            xs, [bar.value for bar in bars], width, label=server, color=CHART_COLOURS[server]
        )
        for rectangle, bar in zip(drawn, bars, strict=True):
            axes.annotate(
                bar.label,
                (rectangle.get_x() + rectangle.get_width() / 2, rectangle.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xticks(range(len(panel.scenarios)), panel.scenarios, rotation=15)
    axes.set_ylabel(f"rate relative to {panel.yardstick} (higher is better)")
    axes.margins(y=0.1)
    # Above the plot, beside the title: inside it, the legend hides the tallest bars.
    axes.legend(
        loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(panel.bars), fontsize=8,
        frameon=False,
    )  # fmt: skip
    axes.set_title(panel.title, loc="left", fontsize=10)


def _draw_idle(axes: Any, idle: Mapping[str, Sample]) -> None:
    servers = ["hasten", "uvicorn", "granian"]
    values = [
        (idle[s].per_conn_bytes or 0) / 1024 if idle.get(s) and not idle[s].skipped else 0
        for s in servers
    ]
    bars = axes.bar(servers, values, color=[CHART_COLOURS[s] for s in servers])
    for bar, value in zip(bars, values, strict=True):
        axes.annotate(
            f"{value:.1f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axes.set_ylabel("KB of server RSS per connection (lower is better)")
    axes.set_title("Idle keep-alive connection", loc="left", fontsize=10)


def draw_chart(results: Results, path: str, subtitle: str) -> None:
    """Grouped bars: throughput relative to uvicorn, HTTP/2 throughput relative to granian,
    and idle memory per connection (each panel only if the run has its rows)."""
    import matplotlib  # noqa: PLC0415 -- only the bench venv has it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = throughput_panels(results)
    idle = results.get("idle")
    rows = max(1, len(panels))
    fig = plt.figure(figsize=(12, 4.8 * rows))
    grid = fig.add_gridspec(rows, 2, width_ratios=[4, 1.3])
    for row, panel in enumerate(panels):
        # The idle panel sits beside the first one; a panel alone on its row spans it.
        columns = slice(0, 1) if row == 0 and idle else slice(0, 2)
        _draw_panel(fig.add_subplot(grid[row, columns]), panel)
    if idle:
        _draw_idle(fig.add_subplot(grid[0, 1]), idle)
    fig.suptitle(f"hasten vs uvicorn vs granian (and hypercorn) — {subtitle}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
