"""measure.py on synthetic timelines whose answers are known exactly (docs/metrics.md definitions)."""

from __future__ import annotations

import pytest

from harness.config import Targets
from harness.measure import (
    LOAD_SNAPSHOT,
    Verdict,
    judge_fault,
    measure_fault,
    percentile,
    verdict,
)
from harness.timeline import FAULT_ACTIVE, FAULT_APPLY_START, FAULT_CLEARED, Sample, Timeline

MS = 1_000_000
DELTA = 100 * MS


def make_timeline(pattern: str, *, inject_at: int | None = None, clear_at: int | None = None,
                  latency_ms: float = 5.0) -> Timeline:
    """One sample per Δ from t=0: '.' good, 'x' failed, 's' ok but slow (not good)."""
    tl = Timeline(anchor_ns=0)
    for i, ch in enumerate(pattern):
        ok = ch != "x"
        good = ch == "."
        lat = 900.0 if ch == "s" else latency_ms
        tl.add_sample(Sample(i * DELTA, "p", ok, int(lat * MS), None if good else "bad", good))
    if inject_at is not None:
        tl.event(FAULT_ACTIVE, "f", t_ns=inject_at)
    if clear_at is not None:
        tl.event(FAULT_CLEARED, "f", t_ns=clear_at)
    return tl


def test_ttd_mttr_and_recovery_times_are_exact() -> None:
    #        0123456789...
    tl = make_timeline("..........xxxxx.......", inject_at=9 * DELTA + 50 * MS, clear_at=14 * DELTA + 20 * MS)
    m = measure_fault(tl, streak=3)
    assert m.t_detect_ns == 10 * DELTA
    assert m.time_to_detect_s == pytest.approx(0.05)
    assert m.t_recovered_ns == 15 * DELTA + 5 * MS  # first of three good samples, when it was answered
    assert m.mttr_s == pytest.approx(0.505)
    assert m.time_to_recover_s == pytest.approx(0.555)
    assert m.recovery_after_clear_s == pytest.approx(0.085)
    assert m.recovered


def test_samples_sent_while_the_fault_is_applied_are_not_baseline() -> None:
    tl = make_timeline("....x.xxxx....", inject_at=5 * DELTA + 50 * MS)
    tl.event(FAULT_APPLY_START, "f", t_ns=4 * DELTA - 10 * MS)  # the kill took 160 ms to apply
    m = measure_fault(tl, streak=3)
    assert m.windows["before"].samples == 4 and m.windows["before"].availability == 1.0
    assert m.windows["during"].samples == 6  # 4..9: the apply, then the outage
    assert m.t_detect_ns == 6 * DELTA  # detection still counts from fault.active


def test_a_good_run_shorter_than_the_streak_does_not_count_as_recovery() -> None:
    tl = make_timeline("....xx..x....", inject_at=4 * DELTA)
    m = measure_fault(tl, streak=3)
    assert m.t_recovered_ns == 9 * DELTA + 5 * MS
    assert m.mttr_s == pytest.approx(0.505)


def test_slow_samples_are_bad() -> None:
    tl = make_timeline("...sss...", inject_at=3 * DELTA)
    m = measure_fault(tl, streak=2)
    assert m.t_detect_ns == 3 * DELTA
    assert m.t_recovered_ns == 6 * DELTA + 5 * MS


def test_breaker_opening_detects_before_a_bad_sample() -> None:
    tl = make_timeline(".....xx....", inject_at=2 * DELTA)
    tl.event("breaker.state", "db", t_ns=3 * DELTA, **{"from": "closed", "to": "open"})
    m = measure_fault(tl, streak=2)
    assert m.t_detect_ns == 3 * DELTA
    assert "breaker" in m.detected_by


def test_alert_counts_as_detection() -> None:
    tl = make_timeline("......xx....", inject_at=2 * DELTA)
    tl.event("alert", "pager", t_ns=4 * DELTA)
    assert measure_fault(tl).t_detect_ns == 4 * DELTA


def test_bad_samples_before_injection_are_ignored() -> None:
    tl = make_timeline("x.....xx.....", inject_at=5 * DELTA)
    assert measure_fault(tl).t_detect_ns == 6 * DELTA


def test_never_recovered_fails_mttr() -> None:
    tl = make_timeline("....xxxxxxxx", inject_at=4 * DELTA)
    m = measure_fault(tl, streak=3, deadline_s=60)
    assert not m.recovered and m.mttr_s is None
    objectives = {o.name: o for o in judge_fault(m, Targets())}
    assert objectives["MTTR"].passed is False
    assert "never recovered" in objectives["MTTR"].note
    assert verdict(list(objectives.values())) is Verdict.FAILED


def test_recovery_after_the_deadline_counts_as_never() -> None:
    tl = make_timeline("..xxxxxxxxxx...", inject_at=2 * DELTA)
    assert measure_fault(tl, streak=3, deadline_s=0.5).recovered is False
    assert measure_fault(tl, streak=3, deadline_s=5).recovered is True


def test_fault_without_visible_effect_is_not_measured_not_passed() -> None:
    tl = make_timeline("..........", inject_at=3 * DELTA, clear_at=5 * DELTA)
    m = measure_fault(tl)
    assert m.t_detect_ns is None and m.mttr_s is None
    objectives = judge_fault(m, Targets())
    by_name = {o.name: o for o in objectives}
    assert by_name["time to detect"].passed is None
    assert by_name["MTTR"].passed is None
    assert verdict(objectives) is Verdict.INCONCLUSIVE


def test_a_request_sent_during_the_outage_recovers_when_answered() -> None:
    """Sent at 0.5 s while partitioned, answered 450 ms later (after the heal at 0.9 s): recovery is 0.95 s."""
    tl = Timeline(anchor_ns=0)
    for i in range(5):
        tl.add_sample(Sample(i * DELTA, "p", i < 2, 5 * MS if i < 2 else 1000 * MS, None, i < 2))
    tl.add_sample(Sample(5 * DELTA, "p", True, 450 * MS, None, True))
    for i in range(6, 10):
        tl.add_sample(Sample(i * DELTA, "p", True, 5 * MS, None, True))
    tl.event(FAULT_ACTIVE, "f", t_ns=2 * DELTA)
    tl.event(FAULT_CLEARED, "f", t_ns=9 * DELTA)
    m = measure_fault(tl, streak=3)
    assert m.t_recovered_ns == 5 * DELTA + 450 * MS
    assert m.recovery_after_clear_s == pytest.approx(0.05)


def test_windows_availability_and_latency() -> None:
    tl = make_timeline(".....xxxx.....", inject_at=5 * DELTA, latency_ms=10)
    m = measure_fault(tl, streak=3)
    assert m.windows["before"].samples == 5 and m.windows["before"].availability == 1.0
    assert m.windows["during"].samples == 4 and m.windows["during"].availability == 0.0
    assert m.windows["after"].samples == 5 and m.windows["after"].availability == 1.0
    assert m.windows["after"].p95_ms == pytest.approx(10.0)


def test_load_windows_use_snapshot_buckets() -> None:
    tl = make_timeline(".....xxxx.....", inject_at=5 * DELTA)
    for i in range(14):
        failures = 3 if 5 <= i < 9 else 0
        tl.event(LOAD_SNAPSHOT, "locust", t_ns=i * DELTA, requests=10, failures=failures)
    m = measure_fault(tl, streak=3)
    assert (m.load["before"].requests, m.load["before"].failures) == (50, 0)
    assert (m.load["during"].requests, m.load["during"].failures) == (40, 12)
    assert m.load["after"].error_rate == 0.0
    names = [o.name for o in judge_fault(m, Targets())]
    assert "load error rate after recovery" in names


def test_load_latency_percentiles_per_window_are_exact_nearest_rank() -> None:
    tl = make_timeline(".....xxxx.....", inject_at=5 * DELTA)
    for i in range(14):
        during = 5 <= i < 9
        # before: 1..5 ms; during: one slow success each bucket; after: 100 requests of 10..109 ms
        ok_ms = [900.0] if during else [float(10 + 10 * (i - 9) + k) for k in range(10)] if i >= 9 else [i + 1.0]
        tl.event(LOAD_SNAPSHOT, "locust", t_ns=i * DELTA, requests=len(ok_ms) + (2 if during else 0),
                 failures=2 if during else 0, ok_ms=ok_ms)
    m = measure_fault(tl, streak=3)
    before, during, after = m.load["before"], m.load["during"], m.load["after"]
    assert (before.p50_ms, before.p95_ms, before.p99_ms) == (3.0, 5.0, 5.0)
    assert during.p99_ms == 900.0 and during.error_rate == pytest.approx(8 / 12)
    assert (after.p50_ms, after.p95_ms, after.p99_ms) == (34.0, 57.0, 59.0)  # 10..59 ms: ranks 25, 48, 50
    by_name = {o.name: o for o in judge_fault(m, Targets(p95_latency_after=0.05))}
    assert by_name["load p95 latency after recovery"].achieved == pytest.approx(0.057)
    assert by_name["load p95 latency after recovery"].passed is False


def test_no_successful_load_request_leaves_load_latency_unmeasured() -> None:
    tl = make_timeline(".....xxxx.....", inject_at=5 * DELTA)
    for i in range(14):
        tl.event(LOAD_SNAPSHOT, "locust", t_ns=i * DELTA, requests=3, failures=3)
    m = measure_fault(tl, streak=3)
    assert m.load["after"].p95_ms is None
    assert "load p95 latency after recovery" not in [o.name for o in judge_fault(m, Targets())]


def test_targets_decide_pass_and_fail() -> None:
    tl = make_timeline("..xxxxxxxxxx....", inject_at=2 * DELTA)
    m = measure_fault(tl, streak=3)
    assert verdict(judge_fault(m, Targets())) is Verdict.PASSED
    strict = Targets(mttr=0.5)
    objectives = {o.name: o for o in judge_fault(m, strict)}
    assert objectives["MTTR"].passed is False


def test_no_fault_event_measures_only_a_baseline() -> None:
    m = measure_fault(make_timeline("....."))
    assert m.t_inject_ns is None and set(m.windows) == {"before"}


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([7], 99) == 7


def test_streak_must_be_positive() -> None:
    with pytest.raises(ValueError, match="streak"):
        measure_fault(make_timeline("..."), streak=0)


def test_breaker_and_recovery_measurements() -> None:
    tl = make_timeline("....xxxxxxxx.....", inject_at=4 * DELTA, clear_at=11 * DELTA)
    for i in range(5):
        tl.event("breaker.failure", "postgres", t_ns=4 * DELTA + i * 10 * MS)
    tl.event("breaker.state", "postgres", t_ns=5 * DELTA, **{"from": "closed", "to": "open"})
    tl.event("recovery.start", "database_connection", t_ns=5 * DELTA + MS)
    tl.event("recovery.end", "database_connection", t_ns=8 * DELTA, recovered=False)
    tl.event("recovery.start", "database_connection", t_ns=9 * DELTA)
    tl.event("recovery.end", "database_connection", t_ns=11 * DELTA + 50 * MS, recovered=True)
    tl.event("breaker.state", "postgres", t_ns=11 * DELTA + 60 * MS, **{"from": "open", "to": "closed"})
    for i in range(6, 10):  # rejected while OPEN, answered fast
        tl.add_sample(Sample(i * DELTA + MS, "p", False, 2 * MS, "HTTP 503 (circuit open)", False))
    # sent before the breaker opened, stuck on the fault for 1 s, rejected on its way out: not fail-fast
    tl.add_sample(Sample(4 * DELTA + 50 * MS, "p", False, 1000 * MS, "HTTP 503 (circuit open)", False))
    m = measure_fault(tl, streak=3)
    assert m.breaker.breaker == "postgres"
    assert m.breaker.time_to_open_s == pytest.approx(0.1)
    assert m.breaker.fail_fast_samples == 4 and m.breaker.fail_fast_p99_ms == pytest.approx(2.0)
    assert m.breaker.time_to_close_s == pytest.approx(0.06)
    assert (m.recovery.rounds, m.recovery.succeeded) == (2, True)
    assert m.recovery.time_s == pytest.approx(0.649)
    names = {o.name: o for o in judge_fault(m, Targets())}
    assert names["breaker fail-fast latency p99"].passed is True
    assert names["automatic recovery time"].passed is True
    assert m.detected_by.startswith("probe") or "breaker" in m.detected_by


def test_recovery_that_never_succeeds_fails_its_objective() -> None:
    tl = make_timeline("....xxxxxx", inject_at=4 * DELTA)
    tl.event("recovery.start", "database_connection", t_ns=5 * DELTA)
    tl.event("recovery.end", "database_connection", t_ns=7 * DELTA, recovered=False)
    m = measure_fault(tl, streak=3)
    assert m.recovery.succeeded is False and m.recovery.time_s is None
    assert {o.name: o for o in judge_fault(m, Targets())}["automatic recovery time"].passed is False


def test_app_events_merge_from_jsonl(tmp_path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text('{"t_ns": 5, "kind": "breaker.state", "source": "pg", "to": "open"}\n'
                   '{"t_ns": -1, "kind": "old", "source": "x"}\n{"torn": \n'
                   '{"t_ns": 7, "kind": "alert", "source": "r", "title": "t"}\n')
    tl = Timeline(anchor_ns=0)
    assert tl.merge_jsonl(log) == 2
    assert [(e.kind, e.data) for e in tl.events] == [("breaker.state", {"to": "open"}), ("alert", {"title": "t"})]
    assert Timeline(anchor_ns=0).merge_jsonl(tmp_path / "missing.jsonl") == 0
