"""Pure pieces of the harness: parsing load-generator output and summarising samples."""

from __future__ import annotations

import re
import resource
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY_LINE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m)\s*$", re.M)
_WRK_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.M)
_WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)", re.M)
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
_H2LOAD_FINISHED = re.compile(r"^finished in ([0-9.]+)(us|ms|s|m), ([0-9.]+) req/s", re.M)
_H2LOAD_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored",
    re.M,
)
_H2LOAD_TLS = re.compile(r"^TLS Protocol: (\S+)\nCipher: (\S+)$", re.M)


@dataclass
class LoadResult:
    """What one load-generator run measured."""

    rate: float  # requests (or messages) per second
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    errors: int = 0  # socket errors, non-2xx answers, failed requests
    client_cpu: float | None = None  # the load generator's CPU share over the run (1.0: a core)
    tls: str | None = None  # the TLS version and cipher negotiated, over TLS


@dataclass
class Sample:
    """One server's result for one scenario in one round."""

    rate: float | None = None  # None where the scenario measures no rate (idle)
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_kb: int | None = None  # peak server RSS during the measurement
    errors: int = 0
    per_conn_bytes: float | None = None  # idle: RSS growth per connection
    rss_growth_kb: int | None = None  # stream: peak RSS minus RSS before the load
    skipped: str | None = None  # why the scenario did not run for this server
    client_cpu: float | None = None  # the load generator's CPU share (1.0: saturated)
    notes: list[str] = field(default_factory=list)


class CpuClock:
    """CPU seconds over wall seconds since it started, of this process or of the children it
    waits for (wrk and h2load): a load generator near 1.0 saturates its core."""

    def __init__(self, who: int) -> None:
        self.who = who
        self.cpu_at_start = self._cpu()
        self.started = time.perf_counter()

    @classmethod
    def of_self(cls) -> CpuClock:
        return cls(resource.RUSAGE_SELF)

    @classmethod
    def of_children(cls) -> CpuClock:
        return cls(resource.RUSAGE_CHILDREN)

    def _cpu(self) -> float:
        usage = resource.getrusage(self.who)
        return usage.ru_utime + usage.ru_stime

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def share(self) -> float:
        return (self._cpu() - self.cpu_at_start) / self.elapsed()


def to_ms(value: str, unit: str) -> float:
    """``"1.5", "ms"`` -> 1.5; wrk prints us, ms, s and m."""
    return float(value) * _UNIT_MS[unit]


def parse_wrk(output: str) -> LoadResult:
    """Requests/s, latency percentiles and error counts from ``wrk --latency`` output."""
    rps = _WRK_RPS.search(output)
    if rps is None:
        raise ValueError(f"no Requests/sec line in wrk output:\n{output}")
    percentiles = {int(p): to_ms(v, u) for p, v, u in _LATENCY_LINE.findall(output)}
    total = _WRK_TOTAL.search(output)
    errors = 0
    non_2xx = _WRK_NON_2XX.search(output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = _WRK_SOCKET_ERRORS.search(output)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return LoadResult(
        rate=float(rps.group(1)),
        p50_ms=percentiles.get(50),
        p99_ms=percentiles.get(99),
        requests=int(total.group(1)) if total else 0,
        errors=errors,
    )


def parse_h2load(output: str) -> LoadResult:
    """Requests/s, failures and the TLS negotiated from h2load output (h2load prints no
    percentiles)."""
    finished = _H2LOAD_FINISHED.search(output)
    requests = _H2LOAD_REQUESTS.search(output)
    if finished is None or requests is None:
        raise ValueError(f"unexpected h2load output:\n{output}")
    total, _started, _done, _succeeded, failed, errored = (int(n) for n in requests.groups())
    tls = _H2LOAD_TLS.search(output)
    return LoadResult(
        rate=float(finished.group(3)),
        requests=total,
        errors=failed + errored,
        tls=f"{tls.group(1)} {tls.group(2)}" if tls else None,
    )


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are present, or None when none are."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the divisor is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def summarise(samples: list[Sample]) -> Sample:
    """The per-field median of one server's samples for one scenario."""
    ran = [s for s in samples if s.skipped is None]
    if not ran:
        return Sample(skipped=samples[0].skipped if samples else "not run")
    rss = median(s.rss_kb for s in ran)
    growth = median(s.rss_growth_kb for s in ran)
    return Sample(
        rate=median(s.rate for s in ran),
        p50_ms=median(s.p50_ms for s in ran),
        p99_ms=median(s.p99_ms for s in ran),
        rss_kb=None if rss is None else int(rss),
        errors=sum(s.errors for s in ran),
        per_conn_bytes=median(s.per_conn_bytes for s in ran),
        rss_growth_kb=None if growth is None else int(growth),
        client_cpu=median(s.client_cpu for s in ran),
        notes=sorted({note for s in ran for note in s.notes}),
    )
