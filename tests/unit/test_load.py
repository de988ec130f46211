"""Load-result parsing: Locust's --json stats and our per-request log."""

from __future__ import annotations

from harness.load import parse_stats, request_buckets


def test_parse_stats_totals_and_percentiles() -> None:
    entries = [
        {"name": "/a", "method": "GET", "num_requests": 4, "num_failures": 1, "start_time": 100.0,
         "last_request_timestamp": 110.0, "response_times": {"10": 2, "20": 1, "100": 1}},
        {"name": "/b", "method": "POST", "num_requests": 1, "num_failures": 0, "start_time": 101.0,
         "last_request_timestamp": 109.0, "response_times": {"50": 1}},
        {"name": "/never", "method": "GET", "num_requests": 0, "num_failures": 0, "start_time": 0,
         "last_request_timestamp": None, "response_times": {}},
    ]
    s = parse_stats(entries, users=3)
    assert (s.requests, s.failures, s.duration_s, s.rps) == (5, 1, 10.0, 0.5)
    assert (s.p50_ms, s.p95_ms) == (20.0, 100.0)
    assert s.endpoints[0].p50_ms == 10.0 and s.endpoints[2].p50_ms is None


def test_request_buckets_group_by_start_time_and_skip_torn_lines(tmp_path) -> None:
    log = tmp_path / "requests.csv"
    ms = 1_000_000
    log.write_text(f"{1000 * ms},1,5.0,GET /a\n{1050 * ms},0,7.0,GET /a\n{1100 * ms},1,3.0,POST /b\n{1199 * ms},1\n"
                   f"garbage\n{1150 * ms},1,4.0,GET /a\n12")
    buckets = request_buckets(log, 100 * ms)
    assert [(b["t_ns"], b["requests"], b["failures"]) for b in buckets] == [(1000 * ms, 2, 1), (1100 * ms, 2, 0)]


def test_request_buckets_of_a_missing_log_are_empty(tmp_path) -> None:
    assert request_buckets(tmp_path / "none.csv", 100) == []
