"""Stop conditions (harness/guards.py): the exact crossing instant of a sliding window, each kind's
config, and the monitor ending the hold at once when a guard trips."""

from __future__ import annotations

import sys
import time

import pytest

from harness.config import parse_config
from harness.errors import ConfigError
from harness.guards import (
    CommandGuard,
    GuardMonitor,
    Point,
    ProbeGuard,
    RequestLogTail,
    first_crossing,
    revert_latency,
)
from harness.timeline import FAULT_CLEARED, FAULT_REVERT_START, Sample, Timeline

S = 1_000_000_000


def pts(*goods: bool, step: float = 0.1) -> list[Point]:
    return [Point(int((i + 1) * step * S), g, 10.0) for i, g in enumerate(goods)]


def test_availability_crosses_at_the_sample_that_makes_the_window_breach() -> None:
    points = pts(*([True] * 20 + [False] * 5))  # window 2 s = 20 samples; the 2nd bad one makes it 18/20 = 90 %
    found = first_crossing("availability", points, 0.9, 2.0, 3, since_ns=0)
    assert found is not None
    t, value = found
    assert t == points[22].t_done_ns and value == pytest.approx(17 / 20)


def test_before_the_watch_and_below_min_samples_do_not_count() -> None:
    points = pts(False, False, True, True, True)
    assert first_crossing("availability", points, 0.9, 2.0, 3, since_ns=points[-1].t_done_ns) is None
    assert first_crossing("availability", pts(False, False), 0.9, 2.0, 3, since_ns=0) is None


def test_error_rate_and_p99_are_ceilings() -> None:
    points = pts(True, True, False, False)
    assert first_crossing("load_error_rate", points, 0.4, 10, 3, 0) == (points[3].t_done_ns, 0.5)
    assert first_crossing("load_error_rate", points, 0.5, 10, 3, 0) is None  # 50 % is not above 50 %
    slow = [Point(i * S, True, ms) for i, ms in enumerate([10, 10, 900, 10], start=1)]
    assert first_crossing("p99_latency", slow, 0.8, 10, 3, 0) == (3 * S, 0.9)


def test_request_log_tail_reads_only_whole_lines(tmp_path) -> None:
    log = tmp_path / "requests.csv"
    log.write_text("1000,1,2.000,GET /\n2000,0,1.000,GET /\n3000,1,5")
    tail = RequestLogTail(log)
    assert [(p.t_done_ns, p.good) for p in tail.read()] == [(2_001_000, True), (1_002_000, False)][::-1]
    with open(log, "a") as f:
        f.write(".000,GET /\n")
    assert len(tail.read()) == 3


@pytest.mark.parametrize(("guard", "message"), [
    ({"kind": "availability"}, "threshold: required for a availability guard"),
    ({"kind": "availability", "threshold": 1.5}, "is not a ratio"),
    ({"kind": "http"}, "url: required for an http guard"),
    ({"kind": "http", "url": "http://192.0.2.1/alarm"}, "loopback"),
    ({"kind": "command"}, "command: required"),
    ({"kind": "availability", "threshold": 0.9, "probe": "nope"}, "no probe 'nope'"),
    ({"kind": "cpu", "threshold": 1}, "kind"),
])
def test_bad_guards_are_one_line_config_errors(guard, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"guards": {"g": guard}})


def test_scenario_guards_add_to_and_replace_the_runs() -> None:
    cfg = parse_config({"guards": {"a": {"kind": "availability", "threshold": 0.9},
                                   "b": {"kind": "command", "command": ["true"]}},
                        "scenarios": {"db_outage": {"guards": {"a": {"kind": "availability", "threshold": 0.5},
                                                               "p": {"kind": "p99_latency", "threshold": "800ms"}}}}})
    guards = cfg.guards_for("db_outage")
    assert guards["a"].threshold == 0.5 and guards["p"].threshold == 0.8 and "b" in guards
    assert cfg.guards_for("cache_outage")["a"].threshold == 0.9


def test_monitor_ends_the_hold_when_a_guard_trips_and_records_it() -> None:
    tl = Timeline()
    cfg = parse_config({"guards": {"avail": {"kind": "availability", "threshold": 0.9, "window": "1s"}}})
    guard = ProbeGuard("avail", cfg.guards["avail"], 0.01, tl, "app")
    monitor = GuardMonitor([guard], tl).start()
    now = time.monotonic_ns()
    for i in range(5):
        tl.add_sample(Sample(now + i * 1000, "app", False, 1000, "HTTP 503"))
    trip = monitor.wait(30)  # returns on the trip, not after the hold's length
    monitor.stop()
    assert trip is not None and trip.guard == "avail" and trip.observed == 0.0
    assert [e.kind for e in tl.events] == ["guard.tripped"]
    tl.event(FAULT_REVERT_START, "f")
    tl.event(FAULT_CLEARED, "f")
    lat = revert_latency(tl, trip)
    assert lat["time_to_revert_s"] >= 0 and lat["time_to_cleared_s"] >= lat["time_to_revert_s"]


def test_a_guard_that_does_not_trip_holds_the_full_time() -> None:
    tl = Timeline()
    cfg = parse_config({"guards": {"ok": {"kind": "command", "command": [sys.executable, "-c", "pass"],
                                          "interval": "50ms"}}})
    monitor = GuardMonitor([CommandGuard("ok", cfg.guards["ok"])], tl).start()
    assert monitor.wait(0.3) is None
    monitor.stop()
    assert tl.events == []


def test_command_guard_trips_on_a_non_zero_exit() -> None:
    cfg = parse_config({"guards": {"c": {"kind": "command", "command": [sys.executable, "-c", "raise SystemExit(3)"]}}})
    trip = CommandGuard("c", cfg.guards["c"]).check(0)
    assert trip is not None and trip.observed == 3.0 and "exited 3" in trip.detail
