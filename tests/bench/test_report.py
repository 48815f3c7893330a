"""The benchmark's target checks and the profile summary, on made-up numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.measure import Sample
from bench.profile import frame_name, top_functions
from bench.report import (
    baseline_lines,
    check_targets,
    draw_chart,
    notes_lines,
    results_table,
    throughput_panels,
)


def _status(results: dict[str, dict[str, Sample]], name: str) -> str:
    return next(check.status for check in check_targets(results) if check.name == name)


def test_hello_target_passes_at_the_ratio() -> None:
    results = {"hello": {"hasten": Sample(rate=180.0), "uvicorn": Sample(rate=100.0)}}
    assert _status(results, "hello >= 1.8x uvicorn") == "PASS"


def test_hello_target_fails_below_the_ratio() -> None:
    results = {"hello": {"hasten": Sample(rate=179.0), "uvicorn": Sample(rate=100.0)}}
    assert _status(results, "hello >= 1.8x uvicorn") == "FAIL"


def test_missing_peer_makes_a_target_skip() -> None:
    results = {"hello": {"hasten": Sample(rate=180.0)}}
    assert _status(results, "hello >= 1.3x granian") == "SKIP"


def test_c1000_needs_a_lower_p99_than_uvicorn() -> None:
    results = {"c1000": {"hasten": Sample(p99_ms=12.0), "uvicorn": Sample(p99_ms=10.0)}}
    assert _status(results, "c1000 p99 lower than uvicorn") == "FAIL"


def test_idle_target_is_three_kilobytes_per_connection() -> None:
    results = {"idle": {"hasten": Sample(per_conn_bytes=3 * 1024)}}
    assert _status(results, "idle <= 3 KB per connection") == "PASS"


def test_unsupported_websocket_skips_its_target() -> None:
    results = {"ws": {"hasten": Sample(skipped="not supported yet")}}
    assert _status(results, "ws >= 1.5x uvicorn") == "SKIP"


def test_websocket_targets_are_issue_18s() -> None:
    results = {
        "ws": {"hasten": Sample(rate=150.0), "uvicorn": Sample(rate=100.0)},
        "ws64k": {"hasten": Sample(rate=129.0), "uvicorn": Sample(rate=100.0)},
        "wsdeflate": {"hasten": Sample(rate=130.0), "uvicorn": Sample(rate=100.0)},
    }
    assert _status(results, "ws >= 1.5x uvicorn") == "PASS"
    assert _status(results, "ws64k >= 1.3x uvicorn") == "FAIL"
    assert _status(results, "wsdeflate >= 1.3x uvicorn") == "PASS"


def test_idle_websocket_memory_must_be_lower_than_uvicorns() -> None:
    results = {
        "wsbroadcast": {
            "hasten": Sample(rate=1.0, per_conn_bytes=4096.0),
            "uvicorn": Sample(rate=1.0, per_conn_bytes=4000.0),
        }
    }
    assert _status(results, "idle WebSocket memory per connection lower than uvicorn") == "FAIL"


def test_h2_target_is_ten_times_hypercorn() -> None:
    results = {"h2": {"hasten": Sample(rate=999.0), "hypercorn": Sample(rate=100.0)}}
    assert _status(results, "h2 >= 10.0x hypercorn") == "FAIL"
    results["h2"]["hasten"] = Sample(rate=1000.0)
    assert _status(results, "h2 >= 10.0x hypercorn") == "PASS"


def test_a_peer_that_served_nothing_makes_its_target_skip() -> None:
    results = {"h2": {"hasten": Sample(rate=1000.0), "hypercorn": Sample(rate=0.0)}}
    assert _status(results, "h2 >= 10.0x hypercorn") == "SKIP"


NO_HTTP2 = Sample(skipped="no HTTP/2 prior knowledge")


@pytest.mark.parametrize("scenario", ["h2", "h2c100", "h2big"])
@pytest.mark.parametrize(("rate", "status"), [(100.0, "PASS"), (99.0, "FAIL")])
def test_http2_targets_are_granians_rate(scenario: str, rate: float, status: str) -> None:
    results = {scenario: {"hasten": Sample(rate=rate), "granian": Sample(rate=100.0)}}
    assert _status(results, f"{scenario} >= 1.0x granian") == status


def test_http2_over_tls_is_reported_with_no_target() -> None:
    results = {"h2tls": {"hasten": Sample(rate=20.0), "granian": Sample(rate=100.0)}}
    [check] = [c for c in check_targets(results) if c.name.startswith("h2tls vs granian")]
    assert check.line() == "INFO h2tls vs granian (reported): measured 0.20x"


def test_every_http2_row_needs_zero_failed_requests() -> None:
    results = {
        "h2": {"hasten": Sample(rate=100.0)},
        "h2c100": {"hasten": Sample(rate=100.0, errors=3)},
        "h2tls": {"hasten": Sample(skipped="no HTTP/2 over TLS (ALPN did not pick h2)")},
    }
    assert _status(results, "h2 0 failed") == "PASS"
    assert _status(results, "h2c100 0 failed") == "FAIL"
    assert _status(results, "h2big 0 failed") == "SKIP"
    assert _status(results, "h2tls 0 failed") == "SKIP"


def _chart_results() -> dict[str, dict[str, Sample]]:
    return {
        "hello": {
            "hasten": Sample(rate=200.0),
            "uvicorn": Sample(rate=100.0),
            "granian": Sample(rate=150.0),
        },
        "idle": {"hasten": Sample(per_conn_bytes=2048), "uvicorn": Sample(per_conn_bytes=8192)},
        "h2": {
            "hasten": Sample(rate=20.0),
            "uvicorn": NO_HTTP2,
            "granian": Sample(rate=100.0),
            "hypercorn": Sample(rate=5.0, errors=16),
        },
        "h2big": {"hasten": Sample(rate=7.0), "uvicorn": NO_HTTP2, "granian": Sample(rate=100.0)},
    }


def test_the_chart_plots_http2_rows_against_granian_beside_the_others() -> None:
    [http1, http2] = throughput_panels(_chart_results())
    assert (http1.yardstick, http1.scenarios) == ("uvicorn", ["hello"])
    assert [bar.label for bar in http1.bars["hasten"]] == ["2.00"]
    assert (http2.yardstick, http2.scenarios) == ("granian", ["h2", "h2big"])
    assert list(http2.bars) == ["hasten", "granian", "hypercorn"]
    assert [bar.label for bar in http2.bars["hasten"]] == ["0.20", "0.07"]
    # A peer's failures are on the chart, and a row it did not run is marked, not left out.
    assert [bar.label for bar in http2.bars["hypercorn"]] == ["0.05\n16 failed", "n/a"]


def test_the_chart_draws_without_http1_rows(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = {k: v for k, v in _chart_results().items() if k.startswith("h2")}
    assert [panel.yardstick for panel in throughput_panels(results)] == ["granian"]
    draw_chart(results, str(tmp_path / "h2.png"), "test")
    assert (tmp_path / "h2.png").read_bytes().startswith(b"\x89PNG")


def test_the_chart_draws_every_panel(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    draw_chart(_chart_results(), str(tmp_path / "all.png"), "test")
    assert (tmp_path / "all.png").read_bytes().startswith(b"\x89PNG")


def test_file_targets_are_twice_uvicorn_granian_and_flat_memory() -> None:
    results = {
        "static": {
            "hasten": Sample(rate=20.0, rss_growth_kb=1024),
            "uvicorn": Sample(rate=10.0),
            "granian": Sample(rate=21.0),
        }
    }
    assert _status(results, "static >= 2.0x uvicorn") == "PASS"
    assert _status(results, "static >= 1.0x granian") == "FAIL"
    assert _status(results, "static memory flat (RSS growth <= 16 MiB)") == "PASS"
    assert _status(results, "file memory flat (RSS growth <= 16 MiB)") == "SKIP"


def test_a_peer_whose_requests_failed_makes_its_target_skip() -> None:
    results = {"h2": {"hasten": Sample(rate=13000.0), "hypercorn": Sample(rate=112.0, errors=16)}}
    assert _status(results, "h2 >= 10.0x hypercorn") == "SKIP"


def test_results_table_shows_ratios_against_both_peers() -> None:
    results = {
        "hello": {
            "hasten": Sample(rate=200.0, p50_ms=1.0, p99_ms=2.0, rss_kb=2048),
            "uvicorn": Sample(rate=100.0),
            "granian": Sample(rate=160.0),
        }
    }
    hasten_row = results_table(results, {"hello": "req/s"})[2]
    assert "| 200 req/s |" in hasten_row
    assert "| 2.00x | 1.25x |" in hasten_row


def test_results_table_shows_the_load_generators_cpu_share() -> None:
    results = {"ws": {"hasten": Sample(rate=200.0, client_cpu=0.874)}}
    assert "| 87% |" in results_table(results, {"ws": "msgs/s"})[2]


def test_notes_shared_by_a_row_are_listed_once_and_others_per_server() -> None:
    results = {
        "ws": {
            "hasten": Sample(rate=1.0, notes=["batch"]),
            "uvicorn": Sample(rate=1.0, notes=["batch"]),
        },
        "h2tls": {
            "hasten": Sample(rate=1.0, notes=["TLS: TLSv1.3 TLS_AES_256_GCM_SHA384"]),
            "granian": Sample(rate=1.0, notes=["TLS: TLSv1.3 TLS_AES_128_GCM_SHA256"]),
            "uvicorn": Sample(skipped="no HTTP/2 over TLS (ALPN did not pick h2)"),
        },
    }
    assert notes_lines(results) == [
        "- `ws`: batch",
        "- `h2tls`, hasten: TLS: TLSv1.3 TLS_AES_256_GCM_SHA384",
        "- `h2tls`, granian: TLS: TLSv1.3 TLS_AES_128_GCM_SHA256",
    ]


def test_profile_frames_drop_line_numbers_so_samples_add_up() -> None:
    assert frame_name("send (/x/hasten/protocols/http1/connection.py:210)") == (
        "send (protocols/http1/connection.py)"
    )
    assert frame_name("run (/usr/lib/python3.11/asyncio/events.py:80)") == "run (events.py)"


def test_profile_counts_own_and_inclusive_samples() -> None:
    stacks = [
        'process 1:"python";run (server.py:10);send (http1.py:3) 5',
        'process 1:"python";run (server.py:10);send (http1.py:4);write (http1.py:9) 3',
    ]
    own, inclusive, total = top_functions(stacks)
    assert total == 8
    assert own["send (http1.py)"] == 5
    assert inclusive["send (http1.py)"] == 8
    assert inclusive["run (server.py)"] == 8


def test_baseline_lines_compare_hasten_with_the_baseline_build() -> None:
    results = {
        "hello": {"hasten": Sample(rate=103.0), "hasten-base": Sample(rate=100.0)},
        "idle": {"hasten": Sample(per_conn_bytes=2000), "hasten-base": Sample(per_conn_bytes=2500)},
        "ws": {"hasten": Sample(rate=50.0)},
    }
    assert baseline_lines(results, "hasten-base") == [
        "hello: hasten rate 1.03x of hasten-base's",
        "idle: hasten memory per connection 0.80x of hasten-base's",
    ]


def test_the_baseline_runs_as_hasten_runs_under_another_python() -> None:
    from bench.servers import HASTEN, baseline

    spec = baseline("/base/bin/python")
    assert spec.name == "hasten-base"
    assert spec.command("plain:hello", 8000, 5) == [
        "/base/bin/python",
        *HASTEN.command("plain:hello", 8000, 5)[1:],
    ]
