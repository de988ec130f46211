"""The objectives of targets that were once only validated: health checks, breaker time-to-open and
wait in OPEN, recovery success rate — judged on synthetic timelines (pass, fail, not measured)."""

from __future__ import annotations

import pytest

from harness.config import Targets
from harness.measure import (
    BREAKER_FAILURE,
    BREAKER_STATE,
    RECOVERY_END,
    RECOVERY_START,
    Verdict,
    judge_fault,
    measure_fault,
    verdict,
)
from harness.timeline import FAULT_ACTIVE, FAULT_APPLY_START, FAULT_CLEARED, Sample, Timeline

MS = 1_000_000
S = 1_000_000_000
DELTA = 100 * MS


def outage(pattern: str = "." * 10 + "x" * 50 + "." * 30) -> Timeline:
    """App probe samples every Δ ('.' good, 'x' failed); the fault is applied at 1.0 s, active at
    1.05 s and cleared at 6.0 s."""
    tl = Timeline(anchor_ns=0)
    for i, ch in enumerate(pattern):
        tl.add_sample(Sample(i * DELTA, "app", ch == ".", 5 * MS, None if ch == "." else "bad", ch == "."))
    tl.event(FAULT_APPLY_START, "kill", t_ns=1 * S)
    tl.event(FAULT_ACTIVE, "kill", t_ns=1 * S + 50 * MS)
    tl.event(FAULT_CLEARED, "kill", t_ns=6 * S)
    return tl


def health(tl: Timeline, kind: str, every_ms: int = 500, latency_ms: float = 3.0, *, fail_in_fault: bool = True,
           fail_at: tuple[int, ...] = (), end_s: float = 9.0) -> None:
    t = 0
    while t < end_s * S:
        in_fault = 1 * S <= t < 6 * S
        ok = not (fail_in_fault and in_fault) and t not in fail_at
        lat = (latency_ms if ok else 1000.0) * MS
        tl.add_sample(Sample(t, f"health.{kind}", ok, int(lat), None if ok else "down", ok))
        t += every_ms * MS


def objectives(tl: Timeline, targets: Targets | None = None) -> dict:
    m = measure_fault(tl, probe="app", streak=3, deadline_s=60)
    return {o.name: o for o in judge_fault(m, targets or Targets())}


def breaker_opens(tl: Timeline, failures: int = 5, *, at: int = 1100 * MS, half_open_after: float | None = None,
                  closed_after: float | None = None) -> None:
    for i in range(failures):
        tl.event(BREAKER_FAILURE, "postgres", t_ns=at - (failures - i) * MS)
    tl.event(BREAKER_STATE, "postgres", t_ns=at, **{"from": "closed", "to": "open", "reason": "failure threshold"})
    if half_open_after is not None:
        tl.event(BREAKER_STATE, "postgres", t_ns=at + int(half_open_after * S),
                 **{"from": "open", "to": "half_open", "reason": "wait_in_open elapsed"})
    if closed_after is not None:
        tl.event(BREAKER_STATE, "postgres", t_ns=at + int(closed_after * S),
                 **{"from": "half_open" if half_open_after is not None else "open", "to": "closed",
                    "reason": "recovered"})


# -- health checks ------------------------------------------------------------------------------------
def test_health_checks_while_up_are_judged_and_fault_window_failures_are_not() -> None:
    tl = outage()
    health(tl, "postgres", latency_ms=12.0)
    health(tl, "redis", latency_ms=2.0, fail_in_fault=False)
    by = objectives(tl)
    pg = by["health check latency p99 (postgres)"]
    assert pg.passed is True and pg.achieved == pytest.approx(0.012) and pg.target == 1.0
    assert "10 of 10 in the fault window failed" in pg.note  # 1.0 s … 5.5 s: detections, not violations
    assert by["health check latency p99 (redis)"].passed is True
    assert by["health check latency p99 (redis)"].target == 0.5
    gap = by["health check interval (largest gap)"]
    assert gap.achieved == pytest.approx(0.5) and gap.passed is True
    m = measure_fault(tl, probe="app")
    assert m.health["health.postgres"].fault_samples == 10 and m.health["health.postgres"].up_samples == 8


def test_a_slow_check_while_up_fails_its_latency_objective() -> None:
    tl = outage()
    health(tl, "redis", latency_ms=700.0)
    o = objectives(tl)["health check latency p99 (redis)"]
    assert o.passed is False and o.achieved == pytest.approx(0.7)


def test_a_failed_check_while_up_fails_even_when_fast() -> None:
    tl = outage()
    health(tl, "postgres", fail_at=(7 * S,))
    tl.add_sample(Sample(7 * S + 1, "health.postgres", False, 2 * MS, "refused", False))
    o = objectives(tl, Targets(health_postgres_latency=5.0))["health check latency p99 (postgres)"]
    assert o.passed is False and "2 failed" in o.note


def test_a_gap_between_checks_longer_than_the_interval_fails() -> None:
    tl = outage()
    health(tl, "postgres", every_ms=2000)
    o = objectives(tl, Targets(health_interval=1.0))["health check interval (largest gap)"]
    assert o.passed is False and o.achieved == pytest.approx(2.0)


def test_a_check_only_inside_the_fault_window_is_not_measured() -> None:
    tl = outage()
    tl.add_sample(Sample(2 * S, "health.postgres", False, 1000 * MS, "down", False))
    by = objectives(tl)
    assert by["health check latency p99 (postgres)"].passed is None
    assert by["health check interval (largest gap)"].passed is None  # one check: no gap to measure


def test_no_health_checks_no_health_objectives_and_the_app_probe_stays_the_default() -> None:
    tl = outage()
    assert not [n for n in objectives(tl) if n.startswith("health")]
    tl2 = Timeline(anchor_ns=0)
    tl2.add_sample(Sample(0, "health.redis", True, MS, None, True))
    tl2.add_sample(Sample(1, "app", True, MS, None, True))
    assert measure_fault(tl2).probe == "app"


# -- breaker: time-to-open and wait in OPEN --------------------------------------------------------
def test_breaker_that_opened_after_the_threshold_passes() -> None:
    tl = outage()
    breaker_opens(tl, failures=5, closed_after=5.5)
    tl.event(RECOVERY_START, "database_connection", t_ns=1150 * MS, breaker="postgres")
    tl.event(RECOVERY_END, "database_connection", t_ns=6500 * MS, recovered=True)
    by = objectives(tl)
    o = by["breaker failed calls before opening"]
    assert o.passed is True and o.achieved == 5 and o.target == 5
    # closed by recovery after 5.5 s, long before the 60 s wait: no wait to judge
    assert "breaker wait in OPEN before HALF_OPEN" not in by
    assert measure_fault(tl, probe="app").breaker.open_episodes[0]["ended"] == "closed"


def test_breaker_that_needed_more_failures_than_the_threshold_fails() -> None:
    tl = outage()
    tl.event(BREAKER_FAILURE, "postgres", t_ns=500 * MS)  # baseline: before the fault, not counted
    breaker_opens(tl, failures=8)
    o = objectives(tl)["breaker failed calls before opening"]
    assert o.passed is False and o.achieved == 8


def test_breaker_without_failure_events_is_not_measured() -> None:
    tl = outage()
    breaker_opens(tl, failures=0)
    assert objectives(tl)["breaker failed calls before opening"].passed is None


def test_wait_in_open_judged_against_the_target_with_tolerance() -> None:
    tl = outage()
    breaker_opens(tl, half_open_after=1.02, closed_after=1.05)
    o = objectives(tl, Targets(breaker_wait_in_open=1.0))["breaker wait in OPEN before HALF_OPEN"]
    assert o.passed is True and o.achieved == pytest.approx(1.02) and o.better == "near"
    too_early = objectives(tl, Targets(breaker_wait_in_open=1.5))["breaker wait in OPEN before HALF_OPEN"]
    assert too_early.passed is False  # it retried 0.48 s before its wait was over
    too_late = objectives(tl, Targets(breaker_wait_in_open=0.3))["breaker wait in OPEN before HALF_OPEN"]
    assert too_late.passed is False  # 1.02 s > 0.3 + 0.5 s


def test_an_open_that_outlasts_the_wait_without_half_open_fails() -> None:
    tl = outage()
    breaker_opens(tl, closed_after=5.0)  # never tried HALF_OPEN although the wait was 1 s
    o = objectives(tl, Targets(breaker_wait_in_open=1.0))["breaker wait in OPEN before HALF_OPEN"]
    assert o.passed is False and o.achieved == pytest.approx(5.0)


# -- recovery success rate -----------------------------------------------------------------------------
def test_recovery_rounds_failing_while_the_fault_is_held_are_one_successful_attempt() -> None:
    tl = outage()
    breaker_opens(tl, closed_after=5.5)
    for k, t in enumerate((1150, 3000, 5000)):
        tl.event(RECOVERY_START, "database_connection", t_ns=t * MS, breaker="postgres")
        tl.event(RECOVERY_END, "database_connection", t_ns=(t + 1500) * MS, recovered=k == 2)
    o = objectives(tl)["recovery success rate"]
    assert o.passed is True and o.achieved == 1.0 and "1 of 1" in o.note


def test_an_attempt_that_never_recovers_fails_the_rate() -> None:
    tl = outage()
    breaker_opens(tl)
    tl.event(RECOVERY_START, "database_connection", t_ns=1150 * MS, breaker="postgres")
    tl.event(RECOVERY_END, "database_connection", t_ns=3000 * MS, recovered=False)
    tl.event(RECOVERY_START, "cache_connection", t_ns=1200 * MS, breaker="redis")
    tl.event(BREAKER_STATE, "redis", t_ns=2000 * MS, **{"from": "half_open", "to": "closed"})  # closed by a trial
    o = objectives(tl)["recovery success rate"]
    assert o.achieved == 0.5 and o.passed is False
    assert verdict(list(objectives(tl).values())) is Verdict.FAILED


def test_a_breaker_that_opened_without_any_recovery_attempt_is_not_measured() -> None:
    tl = outage()
    breaker_opens(tl, closed_after=5.5)
    o = objectives(tl)["recovery success rate"]
    assert o.passed is None and o.achieved is None


def test_no_breaker_no_breaker_or_recovery_objectives() -> None:
    by = objectives(outage())
    assert not {"breaker failed calls before opening", "recovery success rate"} & set(by)


def test_a_check_in_flight_when_the_fault_began_belongs_to_the_fault_window() -> None:
    tl = outage()
    health(tl, "postgres")
    # sent 2 ms before fault.apply_start, cut by the kill 5 ms later: a detection, not a violation
    tl.add_sample(Sample(1 * S - 2 * MS, "health.postgres", False, 5 * MS, "connection reset", False))
    o = objectives(tl)["health check latency p99 (postgres)"]
    assert o.passed is True and "0 failed" in o.note
