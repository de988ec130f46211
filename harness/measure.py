"""Pure functions: a run's Timeline → measurements → objectives judged against Targets.

The one definition of each number is docs/metrics.md; this module implements it and nothing else
computes these numbers. No clocks are read here, so every result is reproducible from a
saved timeline.

    Timeline ──measure_fault()──► FaultMeasurements ──judge()──► [Objective] ──verdict()──► Verdict
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from harness.config import Targets
from harness.timeline import FAULT_ACTIVE, FAULT_APPLY_START, FAULT_CLEARED, Event, Sample, Timeline

WINDOWS = ("before", "during", "after")
LOAD_SNAPSHOT = "load.snapshot"
BREAKER_STATE = "breaker.state"
BREAKER_FAILURE = "breaker.failure"
RECOVERY_START = "recovery.start"
RECOVERY_END = "recovery.end"
ALERT = "alert"
CIRCUIT_OPEN_MARK = "(circuit open)"
HEALTH_PREFIX = "health."  # health-check samples: probe "health.<kind>[.<service>]" (harness/probes.py)
# breaker_wait_in_open: a HALF_OPEN this much before the wait is "too early" (event-write jitter
# only: both transitions are stamped on one clock); later than max(0.5 s, 10 % of the wait) is
# "too late" (OPEN turns HALF_OPEN lazily, on the first call after the wait: under load, ms later).
WAIT_EARLY_TOLERANCE_S = 0.01
WAIT_LATE_TOLERANCE_S = 0.5
WAIT_LATE_TOLERANCE_RATIO = 0.1


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) — the value a fraction q of observations do not exceed.

    Nearest rank rather than interpolation: every reported latency is one that was observed.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class WindowStats:
    """Probe statistics in one window: availability = good samples / all samples."""

    samples: int
    good: int
    availability: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    start_ns: int | None = None
    end_ns: int | None = None


@dataclass(frozen=True)
class LoadWindow:
    """Load-generator requests in one window, by request start time (Locust's per-request log).

    error_rate = failed / all requests started in the window; p50/p95/p99 are nearest-rank
    percentiles of the latencies of the requests that succeeded (a refused request's 1 ms is not
    a latency a user waited for). None = no request (or none succeeded) in the window.
    """

    requests: int
    failures: int
    error_rate: float | None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True)
class FaultMeasurements:
    """docs/metrics.md, 'Fault scenarios'. Times are monotonic ns; durations seconds; None = not measured."""

    probe: str
    t_inject_ns: int | None
    t_detect_ns: int | None
    t_clear_ns: int | None
    t_recovered_ns: int | None
    detected_by: str | None
    time_to_detect_s: float | None
    mttr_s: float | None
    time_to_recover_s: float | None
    recovery_after_clear_s: float | None
    recovered: bool
    deadline_s: float | None
    windows: dict[str, WindowStats] = field(default_factory=dict)
    load: dict[str, LoadWindow] = field(default_factory=dict)
    breaker: BreakerMeasurements | None = None
    recovery: RecoveryMeasurements | None = None
    health: dict[str, HealthCheckStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BreakerMeasurements:
    """docs/metrics.md, 'Circuit breakers', for the breaker that opened first during the fault."""

    breaker: str
    time_to_open_s: float | None  # OPEN − first failed call of the outage
    fail_fast_p50_ms: float | None  # client-visible latency of calls rejected while OPEN
    fail_fast_p99_ms: float | None
    fail_fast_samples: int
    time_to_close_s: float | None  # CLOSED − t_clear
    half_open: list[dict[str, Any]] = field(default_factory=list)  # each episode: result closed/reopened
    # failed calls (`breaker.failure`) from the fault's start (or the breaker's last state change,
    # if later) up to its first OPEN; None when the breaker reports no failure events
    failures_before_open: int | None = None
    # every OPEN of this breaker: seconds in OPEN and what ended it (half_open, closed, unfinished)
    open_episodes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RecoveryMeasurements:
    """Automatic recovery during the fault: rounds run, and the time from the first start to success.

    `attempts` / `successes` count recovery *attempts* over the whole run: an attempt begins with a
    `recovery.start` of a strategy that has none running and lasts, round after round, until a
    round ends recovered or the breaker it serves closes (success), or the run ends (failure).
    Rounds that fail while the dependency is still down are part of one attempt, not failures of
    their own: recovery cannot succeed before the fault is gone.
    """

    strategy: str
    rounds: int
    succeeded: bool
    time_s: float | None
    attempts: int = 0
    successes: int = 0

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.attempts if self.attempts else None


@dataclass(frozen=True)
class HealthCheckStats:
    """One resilience.health check sampled by the harness during the run (probe `health.<kind>…`).

    The fault window is [fault.apply_start, fault.cleared) of the measured fault (to the end of
    the run when it never cleared); a check is in it when it overlapped it (answered at or after
    its start, sent before its end). Checks in the window may fail or be slow on purpose: they
    are detections, counted here but not judged. Checks sent outside it are "while the service is
    up": their latency (a failed check's too: the time it took to fail) is judged, and any
    failure among them fails the objective. `max_gap_s` is the largest interval between two
    consecutive checks (send times): how often the dependency was actually looked at.
    """

    check: str
    kind: str
    samples: int
    up_samples: int
    up_failed: int
    up_p99_ms: float | None
    up_max_ms: float | None
    fault_samples: int
    fault_failed: int
    max_gap_s: float | None


def _breaker_measurements(timeline: Timeline, samples: list[Sample], t_inject: int,
                          t_clear: int | None, t_start: int | None = None) -> BreakerMeasurements | None:
    changes = [e for e in timeline.events if e.kind == BREAKER_STATE and e.t_ns >= t_inject]
    opened = next((e for e in changes if e.data.get("to") == "open"), None)
    if opened is None:
        return None
    name = opened.source
    t_start = t_inject if t_start is None else min(t_start, t_inject)
    first_failure = next((e for e in timeline.events if e.kind == BREAKER_FAILURE and e.source == name
                          and t_inject <= e.t_ns <= opened.t_ns), None)
    closed = next((e for e in changes if e.source == name and e.data.get("to") == "closed" and e.t_ns > opened.t_ns),
                  None)
    # Failed calls that tripped it: from the fault's start, or the breaker's previous state change
    # (a HALF_OPEN that closed, say) if later, up to the OPEN.
    since = max([t_start] + [e.t_ns for e in timeline.events if e.kind == BREAKER_STATE and e.source == name
                             and e.t_ns < opened.t_ns])
    failures = [e for e in timeline.events if e.kind == BREAKER_FAILURE and e.source == name
                and since <= e.t_ns <= opened.t_ns]
    reports_failures = any(e.kind == BREAKER_FAILURE and e.source == name for e in timeline.events)
    # Only calls *sent* while it was open: one sent before the breaker opened waited on the fault
    # itself (a partition's timeout) and was rejected only on its way out.
    fast = [s.latency_ns / 1e6 for s in samples if s.error and CIRCUIT_OPEN_MARK in s.error and s.t_ns >= opened.t_ns]
    episodes = []
    mine = [e for e in changes if e.source == name]
    for i, e in enumerate(mine):
        if e.data.get("to") == "half_open":
            nxt = mine[i + 1] if i + 1 < len(mine) else None
            episodes.append({"t_s": timeline.rel_s(e.t_ns), "result": "reopened" if nxt and nxt.data.get("to") == "open"
                             else "closed" if nxt else "unfinished"})
    t_end = max([timeline.events[-1].t_ns] + [s.t_ns for s in samples[-1:]])
    open_episodes = []
    for i, e in enumerate(mine):
        if e.data.get("to") == "open":
            nxt = mine[i + 1] if i + 1 < len(mine) else None
            open_episodes.append({"t_s": timeline.rel_s(e.t_ns),
                                  "open_s": ((nxt.t_ns if nxt else t_end) - e.t_ns) / 1e9,
                                  "ended": str(nxt.data.get("to")) if nxt else "unfinished",
                                  "reason": str(nxt.data.get("reason", "")) if nxt else ""})
    return BreakerMeasurements(
        breaker=name,
        time_to_open_s=(opened.t_ns - first_failure.t_ns) / 1e9 if first_failure else None,
        fail_fast_p50_ms=percentile(fast, 50), fail_fast_p99_ms=percentile(fast, 99), fail_fast_samples=len(fast),
        time_to_close_s=(closed.t_ns - t_clear) / 1e9 if closed and t_clear is not None else None,
        half_open=episodes,
        failures_before_open=len(failures) if reports_failures else None,
        open_episodes=open_episodes,
    )


def _recovery_measurements(timeline: Timeline, t_inject: int) -> RecoveryMeasurements | None:
    starts = [e for e in timeline.events if e.kind == RECOVERY_START and e.t_ns >= t_inject]
    if not starts:
        return None
    ends = [e for e in timeline.events if e.kind == RECOVERY_END and e.t_ns >= starts[0].t_ns]
    success = next((e for e in ends if e.data.get("recovered")), None)
    attempts, successes = _recovery_attempts(timeline)
    return RecoveryMeasurements(strategy=starts[0].source, rounds=len(starts), succeeded=success is not None,
                                time_s=(success.t_ns - starts[0].t_ns) / 1e9 if success else None,
                                attempts=attempts, successes=successes)


def _recovery_attempts(timeline: Timeline) -> tuple[int, int]:
    """(attempts, successes) over the run; see RecoveryMeasurements."""
    running: dict[str, Event] = {}  # strategy -> the recovery.start that began its attempt
    attempts = successes = 0
    for e in timeline.events:
        if e.kind == RECOVERY_START and e.source not in running:
            running[e.source] = e
            attempts += 1
        elif e.kind == RECOVERY_END and e.source in running and e.data.get("recovered"):
            del running[e.source]
            successes += 1
        elif e.kind == BREAKER_STATE and e.data.get("to") == "closed":
            for strategy, start in list(running.items()):
                if start.data.get("breaker") == e.source:  # closed by other means (a HALF_OPEN trial)
                    del running[strategy]
                    successes += 1
    return attempts, successes


def _health_stats(all_samples: list[Sample], start: int | None, end: int | None) -> dict[str, HealthCheckStats]:
    """Per health check (samples named health.*): see HealthCheckStats. [start, end) is the fault window."""
    out: dict[str, HealthCheckStats] = {}
    for check in sorted({s.probe for s in all_samples if s.probe.startswith(HEALTH_PREFIX)}):
        mine = [s for s in all_samples if s.probe == check]
        # a check that overlapped the window (answered after it began, sent before it ended) is in it
        inside = [start is not None and s.t_ns + s.latency_ns >= start and (end is None or s.t_ns < end)
                  for s in mine]
        in_fault = [s for s, i in zip(mine, inside, strict=True) if i]
        up = [s for s, i in zip(mine, inside, strict=True) if not i]
        up_ms = [s.latency_ns / 1e6 for s in up]
        gaps = [(b.t_ns - a.t_ns) / 1e9 for a, b in zip(mine, mine[1:], strict=False)]
        out[check] = HealthCheckStats(
            check=check, kind=check.removeprefix(HEALTH_PREFIX).split(".")[0], samples=len(mine),
            up_samples=len(up), up_failed=sum(1 for s in up if not s.ok), up_p99_ms=percentile(up_ms, 99),
            up_max_ms=max(up_ms, default=None), fault_samples=len(in_fault),
            fault_failed=sum(1 for s in in_fault if not s.ok), max_gap_s=max(gaps, default=None))
    return out


def _window_stats(samples: list[Sample], start: int | None, end: int | None) -> WindowStats:
    inside = [s for s in samples if (start is None or s.t_ns >= start) and (end is None or s.t_ns < end)]
    good = sum(1 for s in inside if s.good)
    ok_latencies = [s.latency_ns / 1e6 for s in inside if s.ok]
    return WindowStats(
        samples=len(inside), good=good, availability=good / len(inside) if inside else None,
        p50_ms=percentile(ok_latencies, 50), p95_ms=percentile(ok_latencies, 95),
        p99_ms=percentile(ok_latencies, 99), start_ns=start, end_ns=end,
    )


def _load_window(snapshots: list[Event], start: int | None, end: int | None) -> LoadWindow:
    """Requests/failures whose snapshot bucket (by request start) falls in [start, end)."""
    inside = [e for e in snapshots if (start is None or e.t_ns >= start) and (end is None or e.t_ns < end)]
    requests = sum(int(e.data.get("requests", 0)) for e in inside)
    failures = sum(int(e.data.get("failures", 0)) for e in inside)
    ok_ms = [float(v) for e in inside for v in e.data.get("ok_ms", ())]
    return LoadWindow(requests, failures, failures / requests if requests else None,
                      percentile(ok_ms, 50), percentile(ok_ms, 95), percentile(ok_ms, 99))


def _detection(timeline: Timeline, samples: list[Sample], t_inject: int) -> tuple[int | None, str | None]:
    """t_detect: the first of a bad sample, a breaker leaving CLOSED, an alert — at or after t_inject."""
    candidates: list[tuple[int, str]] = []
    bad = next((s for s in samples if s.t_ns >= t_inject and not s.good), None)
    if bad is not None:
        candidates.append((bad.t_ns, f"probe {bad.probe}: {bad.error or 'bad sample'}"))
    for ev in timeline.events:
        if ev.t_ns < t_inject:
            continue
        if ev.kind == BREAKER_STATE and str(ev.data.get("from", "")).lower() == "closed":
            candidates.append((ev.t_ns, f"breaker {ev.source} → {ev.data.get('to')}"))
            break
    alert = timeline.first(ALERT, after_ns=t_inject)
    if alert is not None:
        candidates.append((alert.t_ns, f"alert {alert.source}"))
    return min(candidates) if candidates else (None, None)


def _recovery(samples: list[Sample], t_detect: int, streak: int) -> tuple[int, int] | None:
    """t_recovered: the first sample of the first run of `streak` good samples after t_detect,
    taken at the moment it was *answered* (send + latency).

    A request sent while the outage lasts and answered just after it ends (a partition healing,
    TCP retransmitting) proves the service healthy when it answered, not when it was sent; using
    the send time made MTTR shorter than the outage itself. Normally the two differ by one
    request's latency (milliseconds). Returns (sent, answered) of that sample: windows split at
    the send time, so every sample belongs to exactly one window.
    """
    run_start, run_len = None, 0
    for s in samples:
        if s.t_ns <= t_detect:
            continue
        if s.good:
            run_start = (s.t_ns, s.t_ns + s.latency_ns) if run_len == 0 else run_start
            run_len += 1
            if run_len >= streak:
                return run_start
        else:
            run_len = 0
    return None


def measure_fault(timeline: Timeline, probe: str | None = None, streak: int = 3,
                  deadline_s: float | None = None, fault: str | None = None) -> FaultMeasurements:
    """Measure one fault of the timeline (the first `fault.active`, or the one from source `fault`).

    Only samples of `probe` count (default: the first probe seen). With Δ the probe interval and
    K = `streak` (docs/metrics.md, "Fault scenarios"):

    - t_inject = the fault's `fault.active` event (its apply returned: the fault is in effect).
    - t_detect = the earliest of: the first bad sample sent at or after t_inject, the first breaker
      event leaving CLOSED, the first `alert` event. TTD = t_detect − t_inject (late by ≤ Δ).
    - t_recovered = the moment the first sample of the first run of K good samples after t_detect
      was answered. MTTR = t_recovered − t_detect; time to recover = t_recovered − t_inject;
      recovery after clear = t_recovered − t_clear (`fault.cleared`, held faults only).
    - Recovering later than `deadline_s` after t_inject counts as never recovered: MTTR None.
    - Windows split at `fault.apply_start` (else t_inject) and at the send time of that first good sample: "before",
      "during", "after" (absent when never recovered); each has probe availability and
      latency percentiles, and the load requests started in it (see WindowStats, LoadWindow).
    - No `fault.active` at all: only a "before" window over the whole run.
    """
    if streak < 1:
        raise ValueError(f"recovery streak must be ≥ 1, got {streak}")
    all_samples = timeline.samples
    probe = probe or next((s.probe for s in all_samples if not s.probe.startswith(HEALTH_PREFIX)), "")
    samples = [s for s in all_samples if s.probe == probe]
    active = timeline.first(FAULT_ACTIVE, source=fault)
    snapshots = [e for e in timeline.events if e.kind == LOAD_SNAPSHOT]
    if active is None:
        whole = _window_stats(samples, None, None)
        return FaultMeasurements(probe, None, None, None, None, None, None, None, None, None, False, deadline_s,
                                 windows={"before": whole}, load={"before": _load_window(snapshots, None, None)},
                                 health=_health_stats(all_samples, None, None))
    t_inject = active.t_ns
    cleared = timeline.first(FAULT_CLEARED, source=active.source, after_ns=t_inject)
    t_clear = cleared.t_ns if cleared else None
    t_detect, detected_by = _detection(timeline, samples, t_inject)
    found = _recovery(samples, t_detect, streak) if t_detect is not None else None
    split, t_recovered = found if found else (None, None)
    if t_recovered is not None and deadline_s is not None and (t_recovered - t_inject) / 1e9 > deadline_s:
        split, t_recovered = None, None  # recovered only after the deadline: "never recovered" for this run

    def secs(a: int | None, b: int | None) -> float | None:
        return None if a is None or b is None else (b - a) / 1e9

    # The baseline ends when the fault starts being applied: a probe sent while PostgreSQL is being
    # killed is not steady state (it is not detection either: that counts from t_inject).
    applying = timeline.first(FAULT_APPLY_START, source=active.source)
    t_start = applying.t_ns if applying is not None and applying.t_ns <= t_inject else t_inject
    bounds = {"before": (None, t_start), "during": (t_start, split),
              "after": (split, None) if split is not None else (None, None)}
    windows = {name: _window_stats(samples, *b) for name, b in bounds.items()
               if not (name == "after" and t_recovered is None)}
    load = {name: _load_window(snapshots, *b) for name, b in bounds.items()
            if not (name == "after" and t_recovered is None)}
    return FaultMeasurements(
        probe=probe, t_inject_ns=t_inject, t_detect_ns=t_detect, t_clear_ns=t_clear, t_recovered_ns=t_recovered,
        detected_by=detected_by, time_to_detect_s=secs(t_inject, t_detect), mttr_s=secs(t_detect, t_recovered),
        time_to_recover_s=secs(t_inject, t_recovered), recovery_after_clear_s=secs(t_clear, t_recovered),
        recovered=t_recovered is not None, deadline_s=deadline_s, windows=windows, load=load,
        breaker=_breaker_measurements(timeline, samples, t_inject, t_clear, t_start),
        recovery=_recovery_measurements(timeline, t_inject),
        health=_health_stats(all_samples, t_start, t_clear),
    )


@dataclass(frozen=True)
class Objective:
    """One objective: achieved vs target. passed is None when it was not measured (never 'passed')."""

    name: str
    target: float
    achieved: float | None
    unit: str
    better: str  # "lower" or "higher"
    passed: bool | None
    note: str = ""

    @classmethod
    def judge(cls, name: str, target: float, achieved: float | None, unit: str, better: str = "lower",
              note: str = "", missing_fails: bool = False) -> Objective:
        if achieved is None:
            return cls(name, target, None, unit, better, False if missing_fails else None, note)
        ok = achieved <= target if better == "lower" else achieved >= target
        return cls(name, target, achieved, unit, better, ok, note)


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"  # nothing failed, but something was not measured
    ABORTED = "aborted"  # a stop condition tripped (or a signal): the fault was reverted early
    REGRESSED = "regressed"  # objectives met, but significantly worse than the baseline (harness/baseline.py)

    @property
    def exit_code(self) -> int:
        """The process exit code of a run with this verdict (harness/errors.py, EXIT_CODES)."""
        return {"passed": 0, "failed": 3, "inconclusive": 3, "aborted": 6, "regressed": 7}[self.value]


def judge_fault(m: FaultMeasurements, targets: Targets) -> list[Objective]:
    """The fault-scenario objectives: TTD, MTTR, availability, p95 latency and load errors after recovery."""
    never = f"never recovered within {m.deadline_s:.0f} s" if m.deadline_s else "never recovered"
    undetected = "the fault had no visible effect" if m.t_inject_ns is not None and m.t_detect_ns is None else ""
    after = m.windows.get("after")
    objectives = [
        Objective.judge("time to detect", targets.time_to_detect, m.time_to_detect_s, "s", note=undetected),
        Objective.judge("MTTR", targets.mttr, m.mttr_s, "s", note="" if m.recovered or undetected else never,
                        missing_fails=m.t_detect_ns is not None),
        Objective.judge("availability after recovery", targets.availability_after,
                        after.availability if after else None, "ratio", better="higher"),
        Objective.judge("p95 latency after recovery", targets.p95_latency_after,
                        after.p95_ms / 1000 if after and after.p95_ms is not None else None, "s"),
    ]
    load_after = m.load.get("after")
    if load_after is not None and load_after.requests:
        objectives.append(Objective.judge("load error rate after recovery", targets.load_error_rate_after,
                                          load_after.error_rate, "ratio"))
        if load_after.p95_ms is not None:
            objectives.append(Objective.judge("load p95 latency after recovery", targets.p95_latency_after,
                                              load_after.p95_ms / 1000, "s",
                                              note=f"{load_after.requests - load_after.failures} succeeded requests"))
    if m.breaker is not None and m.breaker.fail_fast_samples:
        objectives.append(Objective.judge("breaker fail-fast latency p99", targets.breaker_decision,
                                          m.breaker.fail_fast_p99_ms / 1000, "s",
                                          note=f"{m.breaker.fail_fast_samples} rejected probe calls"))
    if m.recovery is not None:
        objectives.append(Objective.judge("automatic recovery time", targets.recovery_time, m.recovery.time_s, "s",
                                          note=f"{m.recovery.strategy}: {m.recovery.rounds} round(s)",
                                          missing_fails=True))
    objectives += judge_breaker_and_recovery(m, targets)
    objectives += judge_health(m, targets)
    return objectives


def judge_breaker_and_recovery(m: FaultMeasurements, targets: Targets) -> list[Objective]:
    """breaker_failure_threshold, breaker_wait_in_open and recovery_success_rate, for a run in which a
    breaker opened (a run where none opened has nothing of these to judge: they are left out).

    - failed calls before opening = `breaker.failure` events of the breaker that opened first, from
      the fault's start (or its previous state change) to its OPEN: ≤ breaker_failure_threshold.
      Not measured when the breaker reports no failure events.
    - wait in OPEN: each OPEN that ended in HALF_OPEN, or lasted past the wait's upper tolerance
      without one (closed by recovery late, or still OPEN at the end), is an observed wait; each
      must lie in [wait − WAIT_EARLY_TOLERANCE_S, wait + max(WAIT_LATE_TOLERANCE_S, 10 % of wait)]:
      neither retried earlier than breaker_wait_in_open nor much later. Achieved is the observed
      wait farthest from the target. An OPEN that recovery closed before the wait elapsed has no
      wait to judge; when every OPEN did, the objective is left out (the episodes are in the
      measurements).
    - recovery success rate = successful attempts / attempts over the run (RecoveryMeasurements) ≥
      recovery_success_rate; not measured when a breaker opened but no recovery attempt is on the
      timeline.
    """
    b = m.breaker
    if b is None:
        return []
    failures = None if b.failures_before_open is None else float(b.failures_before_open)
    objectives = [Objective.judge("breaker failed calls before opening", float(targets.breaker_failure_threshold),
                                  failures, "calls",
                                  note=f"breaker {b.breaker}" + ("" if failures is not None else
                                                                 ": no breaker.failure events"))]
    wait = targets.breaker_wait_in_open
    lo = max(0.0, wait - WAIT_EARLY_TOLERANCE_S)
    hi = wait + max(WAIT_LATE_TOLERANCE_S, WAIT_LATE_TOLERANCE_RATIO * wait)
    observed = [e["open_s"] for e in b.open_episodes if e["ended"] == "half_open" or e["open_s"] > hi]
    if observed:
        worst = max(observed, key=lambda d: abs(d - wait))
        objectives.append(Objective("breaker wait in OPEN before HALF_OPEN", wait, worst, "s", "near",
                                    all(lo <= d <= hi for d in observed),
                                    f"{len(observed)} observed wait(s), allowed {lo:.3g}–{hi:.3g} s"))
    r = m.recovery
    if r is None:
        objectives.append(Objective.judge("recovery success rate", targets.recovery_success_rate, None, "ratio",
                                          better="higher", note="a breaker opened but no recovery was attempted"))
    else:
        objectives.append(Objective.judge("recovery success rate", targets.recovery_success_rate, r.success_rate,
                                          "ratio", better="higher",
                                          note=f"{r.successes} of {r.attempts} attempt(s) recovered"))
    return objectives


def judge_health(m: FaultMeasurements, targets: Targets) -> list[Objective]:
    """The harness's own health checks of PostgreSQL and Redis (HealthCheckStats), when it ran them.

    - latency p99 (nearest rank, so the maximum below 100 checks) of the checks sent while the
      service was up (outside the fault window) ≤ health_postgres_latency / health_redis_latency,
      and none of them failed. Checks inside the fault window are detections, not judged.
    - health check interval: the largest gap between consecutive checks of any one check ≤
      health_interval (the checks kept looking at the dependency); not measured below two checks.
    """
    if not m.health:
        return []
    objectives = []
    limits = {"postgres": targets.health_postgres_latency, "redis": targets.health_redis_latency}
    for h in m.health.values():
        if h.kind not in limits:
            continue
        name = f"health check latency p99 ({h.check.removeprefix(HEALTH_PREFIX)})"
        note = (f"{h.up_samples} check(s) while up, {h.up_failed} failed; "
                f"{h.fault_failed} of {h.fault_samples} in the fault window failed (detection, not judged)")
        achieved = None if h.up_p99_ms is None else h.up_p99_ms / 1000
        ok = None if achieved is None else achieved <= limits[h.kind] and h.up_failed == 0
        objectives.append(Objective(name, limits[h.kind], achieved, "s", "lower", ok, note))
    gaps = [h.max_gap_s for h in m.health.values() if h.max_gap_s is not None]
    objectives.append(Objective.judge("health check interval (largest gap)", targets.health_interval,
                                      max(gaps) if len(gaps) == len(m.health) else None, "s",
                                      note=f"{sum(h.samples for h in m.health.values())} checks"))
    return objectives


def verdict(objectives: list[Objective]) -> Verdict:
    if any(o.passed is False for o in objectives):
        return Verdict.FAILED
    if any(o.passed is None for o in objectives) or not objectives:
        return Verdict.INCONCLUSIVE
    return Verdict.PASSED


# -- disaster-recovery drills (docs/metrics.md, "Disaster recovery drills") ------------------------
DRILL_DISASTER = "drill.disaster"
DRILL_DECLARED = "drill.declared"
DRILL_SERVING = "drill.serving"
CANARY_ACK = "canary.ack"
CANARY_RESTORED = "canary.restored"
DRILL_STEPS = ("restore", "start", "verify", "serve")  # each has drill.<step>.start / drill.<step>.end


@dataclass(frozen=True)
class DrillMeasurements:
    """Achieved RTO and RPO of one drill. Seconds; None = not measured (the step did not happen)."""

    t_disaster_ns: int | None
    t_declared_ns: int | None
    t_serving_ns: int | None
    rto_s: float | None
    steps: dict[str, float | None]
    rpo_s: float | None
    rows_acknowledged: int | None
    rows_restored: int | None
    rows_lost: int | None
    newest_restored_wall: str | None
    verified: bool | None
    backup_age_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_drill(timeline: Timeline, backup_end_wall: Any = None) -> DrillMeasurements:
    """RTO = t_serving − t_declared; RPO = t_disaster − commit time of the newest canary row restored
    (server wall clock, compared through the run's anchor); rows lost = highest sequence acknowledged
    before t_disaster − highest sequence restored."""
    from datetime import datetime

    disaster = timeline.first(DRILL_DISASTER)
    t_disaster = disaster.t_ns if disaster else None
    declared = timeline.first(DRILL_DECLARED)
    t_declared = declared.t_ns if declared else t_disaster
    serving = timeline.first(DRILL_SERVING, after_ns=t_declared) if t_declared is not None else None
    t_serving = serving.t_ns if serving else None

    steps: dict[str, float | None] = {}
    for step in DRILL_STEPS:
        start = timeline.first(f"drill.{step}.start")
        end = timeline.first(f"drill.{step}.end", after_ns=start.t_ns) if start else None
        # a stage that raised ends with `error` (harness/drill/pipeline.py Stages): it did not finish
        steps[step] = (end.t_ns - start.t_ns) / 1e9 if start and end and "error" not in end.data else None
    verify_end = timeline.first("drill.verify.end")
    verified = bool(verify_end.data.get("passed")) if verify_end and "error" not in verify_end.data else None

    acked = [e for e in timeline.events if e.kind == CANARY_ACK and (t_disaster is None or e.t_ns < t_disaster)]
    rows_ack = max((int(e.data["seq"]) for e in acked), default=None)
    restored = timeline.first(CANARY_RESTORED)
    rows_restored = int(restored.data["max_seq"]) if restored and restored.data.get("max_seq") is not None else None
    newest = restored.data.get("max_written_at") if restored else None
    rpo = None
    if t_disaster is not None and newest:
        rpo = max(0.0, (t_disaster - timeline.mono(datetime.fromisoformat(newest))) / 1e9)
    elif t_disaster is not None and restored is not None and rows_restored is None:
        rpo = None  # nothing restored: RPO cannot be stated from canary data
    rows_lost = rows_ack - (rows_restored or 0) if rows_ack is not None and restored is not None else None
    backup_age = None
    if backup_end_wall is not None and t_disaster is not None:
        end_wall = datetime.fromisoformat(backup_end_wall) if isinstance(backup_end_wall, str) else backup_end_wall
        backup_age = (t_disaster - timeline.mono(end_wall)) / 1e9
    rto = (t_serving - t_declared) / 1e9 if t_serving is not None and t_declared is not None and verified else None
    return DrillMeasurements(t_disaster, t_declared, t_serving, rto, steps, rpo, rows_ack, rows_restored,
                             rows_lost, newest, verified, backup_age)


def judge_drill(m: DrillMeasurements, targets: Targets) -> list[Objective]:
    """RTO and RPO against their targets, plus 'restore verified'. A drill that did not verify has no RTO."""
    rto_note = "" if m.verified else ("verification failed" if m.verified is False else "restore did not finish")
    return [
        Objective.judge("RTO (declared → verified and serving)", targets.rto, m.rto_s, "s", note=rto_note,
                        missing_fails=m.t_declared_ns is not None),
        Objective.judge("RPO (disaster − newest restored commit)", targets.rpo, m.rpo_s, "s",
                        note="" if m.rows_lost is None else f"{m.rows_lost} canary rows lost",
                        missing_fails=m.t_disaster_ns is not None),
        Objective("restore verified", 1, None if m.verified is None else float(m.verified), "bool", "higher",
                  m.verified),
    ]


# -- restore tests of YOUR backups (docs/metrics.md, "Restore tests") ----------------------------------
RT_DECLARED = "restore_test.declared"
RT_READY = "restore_test.ready"
RT_NEWEST = "restore_test.newest_data"
RT_STAGES = ("verify", "restore", "start", "checks", "amcheck", "serve")  # restore_test.<stage>.start/.end


@dataclass(frozen=True)
class RestoreTestMeasurements:
    """RTO (declared → checked and ready, by stage) and RPO (disaster − newest data recovered)."""

    t_declared_ns: int | None
    t_ready_ns: int | None
    rto_s: float | None
    steps: dict[str, float | None]
    rpo_s: float | None
    rpo_evidence: str | None
    rpo_strength: str | None  # "strong" (commit timestamps, a user's column) or "weaker" (replay end, backup stop, file times)
    newest_data_wall: str | None
    disaster_wall: str | None
    backup_age_s: float | None
    checked: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_restore_test(timeline: Timeline, *, disaster_wall: Any, backup_end_wall: Any = None,
                         checked: bool | None = None) -> RestoreTestMeasurements:
    """RTO = ready − declared (only when every check passed); RPO = disaster − newest data the restore
    recovered (wall clocks: the disaster as declared, the newest data as the restored server says);
    backup age = disaster − the backup's stop time."""
    from datetime import datetime

    def wall(v: Any) -> datetime | None:
        return datetime.fromisoformat(v) if isinstance(v, str) else v

    declared = timeline.first(RT_DECLARED)
    t_declared = declared.t_ns if declared else None
    ready = timeline.first(RT_READY)
    t_ready = ready.t_ns if ready else None
    steps: dict[str, float | None] = {}
    for stage in RT_STAGES:
        start = timeline.first(f"restore_test.{stage}.start")
        end = timeline.first(f"restore_test.{stage}.end", after_ns=start.t_ns) if start else None
        steps[stage] = (end.t_ns - start.t_ns) / 1e9 if start and end else None
    newest = timeline.first(RT_NEWEST)
    disaster = wall(disaster_wall)
    rpo = evidence = strength = newest_wall = None
    if newest is not None and newest.data.get("wall"):
        newest_wall = newest.data["wall"]
        evidence, strength = newest.data.get("evidence"), newest.data.get("strength")
        if disaster is not None:
            rpo = max(0.0, (disaster - wall(newest_wall)).total_seconds())
    backup_age = None
    if backup_end_wall is not None and disaster is not None:
        backup_age = (disaster - wall(backup_end_wall)).total_seconds()
    rto = (t_ready - t_declared) / 1e9 if t_ready is not None and t_declared is not None and checked else None
    return RestoreTestMeasurements(t_declared, t_ready, rto, steps, rpo, evidence, strength, newest_wall,
                                   disaster.isoformat() if disaster else None, backup_age, checked)


def judge_restore_test(m: RestoreTestMeasurements, targets: Targets) -> list[Objective]:
    """RTO and RPO against their targets (the RPO note names its evidence), plus 'restore checks passed'."""
    rto_note = "" if m.checked else ("a check failed" if m.checked is False else "the restore did not finish")
    rpo_note = f"evidence: {m.rpo_evidence}" + (" (weaker evidence)" if m.rpo_strength == "weaker" else "") \
        if m.rpo_evidence else "no evidence of the newest data"
    return [
        Objective.judge("RTO (declared → restored, checked and ready)", targets.rto, m.rto_s, "s", note=rto_note,
                        missing_fails=m.t_declared_ns is not None),
        Objective.judge("RPO (disaster − newest data recovered)", targets.rpo, m.rpo_s, "s", note=rpo_note,
                        missing_fails=m.t_declared_ns is not None),
        Objective("restore checks passed", 1, None if m.checked is None else float(m.checked), "bool", "higher",
                  m.checked),
    ]
