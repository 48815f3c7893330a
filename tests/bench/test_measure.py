"""The benchmark harness's pure pieces: parsing load-generator output, medians, ratios."""

from __future__ import annotations

import pytest
from bench.measure import Sample, median, parse_h2load, parse_wrk, ratio, summarise, to_ms
from bench.run import rotated
from bench.servers import GRANIAN, HASTEN, UVICORN

WRK_OUTPUT = """\
Running 6s test @ http://127.0.0.1:41234/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.12ms  510.22us   12.40ms   91.03%
    Req/Sec    20.51k   612.11    21.30k    88.33%
  Latency Distribution
     50%    3.05ms
     75%    3.21ms
     90%    3.48ms
     99%  850.00us
  122459 requests in 6.00s, 14.25MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  20409.51
Transfer/sec:      2.37MB
"""

H2LOAD_OUTPUT = """\
starting benchmark...
finished in 6.00s, 15234.50 req/s, 1.10MB/s
requests: 91407 total, 91407 started, 91407 done, 91400 succeeded, 5 failed, 2 errored, 0 timeout
status codes: 91400 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def test_wrk_requests_per_second_is_read() -> None:
    assert parse_wrk(WRK_OUTPUT).rate == pytest.approx(20409.51)


def test_wrk_latency_percentiles_are_converted_to_milliseconds() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.p50_ms == pytest.approx(3.05)
    assert result.p99_ms == pytest.approx(0.85)


def test_wrk_socket_errors_and_non_2xx_answers_count_as_errors() -> None:
    assert parse_wrk(WRK_OUTPUT).errors == 7


def test_wrk_request_total_is_read() -> None:
    assert parse_wrk(WRK_OUTPUT).requests == 122459


def test_wrk_output_without_a_rate_is_an_error() -> None:
    with pytest.raises(ValueError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [("250.5", "us", 0.2505), ("1.5", "ms", 1.5), ("2.00", "s", 2000.0), ("1", "m", 60000.0)],
)
def test_wrk_time_units_become_milliseconds(value: str, unit: str, expected: float) -> None:
    assert to_ms(value, unit) == pytest.approx(expected)


def test_h2load_rate_and_failures_are_read() -> None:
    result = parse_h2load(H2LOAD_OUTPUT)
    assert result.rate == pytest.approx(15234.50)
    assert result.errors == 7
    assert result.requests == 91407


def test_h2load_over_tls_gives_the_version_and_cipher_negotiated() -> None:
    over_tls = H2LOAD_OUTPUT.replace(
        "starting benchmark...\n",
        "starting benchmark...\nspawning thread #0: 8 total client(s). 91407 total requests\n"
        "TLS Protocol: TLSv1.3\nCipher: TLS_AES_128_GCM_SHA256\n"
        "Server Temp Key: X25519 253 bits\nApplication protocol: h2\n",
    )
    assert parse_h2load(over_tls).tls == "TLSv1.3 TLS_AES_128_GCM_SHA256"
    assert parse_h2load(H2LOAD_OUTPUT).tls is None


def test_median_ignores_missing_values() -> None:
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([None, None]) is None


def test_ratio_is_none_without_a_divisor() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(3.0, 0.0) is None
    assert ratio(None, 2.0) is None


def test_summary_takes_the_median_of_each_field_and_sums_errors() -> None:
    samples = [
        Sample(rate=100.0, p99_ms=9.0, rss_kb=3000, errors=1),
        Sample(rate=300.0, p99_ms=1.0, rss_kb=1000),
        Sample(rate=200.0, p99_ms=5.0, rss_kb=2000, errors=2),
    ]
    summary = summarise(samples)
    assert (summary.rate, summary.p99_ms, summary.rss_kb, summary.errors) == (200.0, 5.0, 2000, 3)


def test_summary_of_skipped_runs_keeps_the_reason() -> None:
    summary = summarise([Sample(skipped="not supported yet")])
    assert summary.skipped == "not supported yet"
    assert summary.rate is None


def test_servers_take_turns_leading_from_round_to_round() -> None:
    peers = (HASTEN, UVICORN, GRANIAN)
    firsts = [next(rotated(peers, round_index)).name for round_index in range(3)]
    assert firsts == ["hasten", "uvicorn", "granian"]
    assert sorted(s.name for s in rotated(peers, 1)) == ["granian", "hasten", "uvicorn"]
