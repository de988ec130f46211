"""Stop conditions: guards evaluated continuously while a fault is held; the first to trip stops it.

    FaultExperiment: with fault: GuardMonitor.wait(hold) ─┬─ hold elapsed  → leave `with` (revert)
                                                          └─ a guard trips → leave `with` at once (the same revert)
    each guard: its own thread, every interval ─► check(now) ─► Trip | None

Data guards (availability, load_error_rate, p99_latency) read what the run already records — the
probe samples on the timeline, the load's per-request log as Locust writes it — over a sliding
window of completion times. `first_crossing` finds the exact instant the window first crossed the
threshold (the completion of the sample or request that made it cross), so the time from the
crossing to the revert (`time_to_revert_s`) is measured, not estimated. The http and command guards
trip at the completion of the failing check.

Guards run only while the fault is held: a run without a fault in force has nothing to stop.
"""

from __future__ import annotations

import contextlib
import csv
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from harness.config import Config, GuardConfig
from harness.measure import percentile
from harness.timeline import Timeline

GUARD_TRIPPED = "guard.tripped"
RUN_ABORTED = "run.aborted"


@dataclass(frozen=True)
class Trip:
    """A guard that tripped: what it watched, its threshold, the value observed, and when it crossed."""

    guard: str
    kind: str
    threshold: float
    observed: float
    comparison: str  # how observed relates to the threshold when tripped: "<", ">", "≠"
    t_crossed_ns: int
    unit: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        from reports.run_report import format_value

        return asdict(self) | {"reason": f"stop condition {self.guard} tripped",
                               "threshold_text": format_value(self.threshold, self.unit),
                               "observed_text": format_value(self.observed, self.unit)}


@dataclass(frozen=True)
class Point:
    """One completed observation: when it completed (monotonic ns), good or not, its latency (ms)."""

    t_done_ns: int
    good: bool
    latency_ms: float


def window_value(kind: str, points: Sequence[Point]) -> float:
    if kind == "availability":
        return sum(p.good for p in points) / len(points)
    if kind == "load_error_rate":
        return sum(not p.good for p in points) / len(points)
    return percentile([p.latency_ms for p in points], 99) / 1000  # p99_latency, seconds


def breached(kind: str, value: float, threshold: float) -> bool:
    return value < threshold if kind == "availability" else value > threshold


def first_crossing(kind: str, points: Sequence[Point], threshold: float, window_s: float, min_samples: int,
                   since_ns: int) -> tuple[int, float] | None:
    """The first completion time t > since_ns at which the window (t − window, t] of `points`
    (sorted by completion) held ≥ min_samples and breached the threshold, with the window's value."""
    window_ns = int(window_s * 1e9)
    lo = 0
    for hi, p in enumerate(points):
        while points[lo].t_done_ns <= p.t_done_ns - window_ns:
            lo += 1
        if p.t_done_ns <= since_ns or (hi + 1 < len(points) and points[hi + 1].t_done_ns == p.t_done_ns):
            continue  # before the watch began, or not the last point completed at that instant
        window = points[lo:hi + 1]
        if len(window) >= min_samples:
            value = window_value(kind, window)
            if breached(kind, value, threshold):
                return p.t_done_ns, value
    return None


class RequestLogTail:
    """The load's per-request log (harness/locustfile.py), read incrementally while Locust writes it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = ""
        self._lock = threading.Lock()
        self.points: list[Point] = []

    def read(self) -> list[Point]:
        with self._lock:
            try:
                with open(self.path, encoding="utf-8", errors="replace") as f:
                    f.seek(self._offset)
                    chunk = f.read()
                    self._offset = f.tell()
            except FileNotFoundError:
                return self.points
            text = self._partial + chunk
            lines = text.split("\n")
            self._partial = lines.pop()  # a line Locust has not finished writing
            fresh = []
            for row in csv.reader(lines):
                with contextlib.suppress(ValueError, IndexError):
                    start, ok, latency = int(row[0]), row[1] == "1", float(row[2])
                    fresh.append(Point(start + int(latency * 1e6), ok, latency))
            if fresh:
                self.points = sorted(self.points + fresh, key=lambda p: p.t_done_ns)
            return self.points


class Guard:
    """One stop condition. `check(since_ns)` → a Trip when it crossed after `since_ns`, else None."""

    def __init__(self, name: str, cfg: GuardConfig, interval_s: float) -> None:
        self.name, self.cfg, self.interval_s = name, cfg, interval_s

    def check(self, since_ns: int) -> Trip | None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def unit(self) -> str:
        return "s" if self.cfg.kind == "p99_latency" else "ratio"

    def _trip(self, found: tuple[int, float] | None, detail: str) -> Trip | None:
        if found is None:
            return None
        t, value = found
        return Trip(self.name, self.cfg.kind, float(self.cfg.threshold), value,
                    "<" if self.cfg.kind == "availability" else ">", t, self.unit, detail)


class ProbeGuard(Guard):
    """availability or p99_latency of a probe's samples (completion = send time + latency)."""

    def __init__(self, name: str, cfg: GuardConfig, interval_s: float, timeline: Timeline, probe: str) -> None:
        super().__init__(name, cfg, interval_s)
        self.timeline, self.probe = timeline, probe

    def check(self, since_ns: int) -> Trip | None:
        points = sorted((Point(s.t_ns + s.latency_ns, s.good, s.latency_ns / 1e6)
                         for s in self.timeline.samples if s.probe == self.probe), key=lambda p: p.t_done_ns)
        found = first_crossing(self.cfg.kind, points, float(self.cfg.threshold), self.cfg.window,
                               self.cfg.min_samples, since_ns)
        return self._trip(found, f"probe {self.probe}, window {self.cfg.window:g} s")


class LoadGuard(Guard):
    """load_error_rate or p99_latency (source load) of the load's requests (completion = start + latency)."""

    def __init__(self, name: str, cfg: GuardConfig, interval_s: float, tail: RequestLogTail) -> None:
        super().__init__(name, cfg, interval_s)
        self.tail = tail

    def check(self, since_ns: int) -> Trip | None:
        found = first_crossing(self.cfg.kind, self.tail.read(), float(self.cfg.threshold), self.cfg.window,
                               self.cfg.min_samples, since_ns)
        return self._trip(found, f"load requests, window {self.cfg.window:g} s")


class HttpGuard(Guard):
    """GET url; trips when the status is not expect_status or it does not answer in time."""

    def __init__(self, name: str, cfg: GuardConfig) -> None:
        super().__init__(name, cfg, cfg.interval)
        self.client = httpx.Client(timeout=cfg.timeout, trust_env=False)

    def check(self, since_ns: int) -> Trip | None:
        try:
            status = self.client.get(self.cfg.url).status_code
            detail = f"GET {self.cfg.url}: HTTP {status}"
        except httpx.HTTPError as exc:
            status, detail = 0, f"GET {self.cfg.url}: {type(exc).__name__}"
        if status == self.cfg.expect_status:
            return None
        return Trip(self.name, "http", float(self.cfg.expect_status), float(status), "≠", time.monotonic_ns(),
                    "status", detail)


class CommandGuard(Guard):
    """Runs command (argv, no shell); trips on a non-zero exit status or the timeout."""

    def __init__(self, name: str, cfg: GuardConfig) -> None:
        super().__init__(name, cfg, cfg.interval)

    def check(self, since_ns: int) -> Trip | None:
        try:
            code = subprocess.run(list(self.cfg.command), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=self.cfg.timeout).returncode
            detail = f"{self.cfg.command[0]} exited {code}"
        except subprocess.TimeoutExpired:
            code, detail = -1, f"{self.cfg.command[0]} timed out after {self.cfg.timeout:g} s"
        except OSError as exc:
            code, detail = 127, f"{self.cfg.command[0]}: {exc.strerror or type(exc).__name__}"
        if code == 0:
            return None
        return Trip(self.name, "command", 0.0, float(code), "≠", time.monotonic_ns(), "exit status", detail)


def build_guards(config: Config, scenario: str, timeline: Timeline,
                 request_log: Path | None) -> list[Guard]:
    """The scenario's guards ([guards] + scenarios.<name>.guards), ready to watch this run."""
    guards: list[Guard] = []
    first_probe = next(iter(config.probes))
    tail = RequestLogTail(request_log) if request_log is not None else None
    for name, g in config.guards_for(scenario).items():
        interval = config.run.probe_interval
        if g.kind in ("availability", "p99_latency") and g.source == "probe":
            guards.append(ProbeGuard(name, g, interval, timeline, g.probe or first_probe))
        elif g.kind in ("load_error_rate", "p99_latency"):
            if tail is not None:
                guards.append(LoadGuard(name, g, interval, tail))
        elif g.kind == "http":
            guards.append(HttpGuard(name, g))
        else:
            guards.append(CommandGuard(name, g))
    return guards


class GuardMonitor:
    """Runs each guard in its own thread while the fault is held; `wait(hold)` returns the first Trip."""

    def __init__(self, guards: list[Guard], timeline: Timeline,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.guards = guards
        self.timeline = timeline
        self.trip: Trip | None = None
        self._tripped = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._on_error = on_error or (lambda _m: None)
        self.since_ns = 0

    def start(self) -> GuardMonitor:
        self.since_ns = time.monotonic_ns()
        for g in self.guards:
            t = threading.Thread(target=self._watch, args=(g,), name=f"guard-{g.name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _watch(self, guard: Guard) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                trip = guard.check(self.since_ns)
            except Exception as exc:  # a guard that cannot evaluate says so; it never stops the run by crashing
                self._on_error(f"guard {guard.name}: {type(exc).__name__}: {exc}")
                trip = None
            if trip is not None:
                with self._lock:
                    if self.trip is None and not self._stop.is_set():
                        self.trip = trip
                        self._tripped.set()  # first: the hold ends now, whatever happens below
                        self.timeline.event(GUARD_TRIPPED, guard.name, guard_kind=trip.kind,
                                            threshold=trip.threshold, observed=trip.observed,
                                            t_crossed_ns=trip.t_crossed_ns, detail=trip.detail)
                return
            next_t += guard.interval_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def wait(self, timeout_s: float) -> Trip | None:
        """Hold for `timeout_s`, or less: returns at once when a guard trips."""
        if not self.guards:
            time.sleep(timeout_s)
            return None
        self._tripped.wait(timeout_s)
        return self.trip

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
        for t in self._threads:
            t.join(timeout=max(5.0, *(g.cfg.timeout + 1 for g in self.guards)))
        for g in self.guards:
            if isinstance(g, HttpGuard):
                g.client.close()


def revert_latency(timeline: Timeline, trip: Trip) -> dict[str, float | None]:
    """Seconds from the threshold's crossing to the fault's revert starting and to it being cleared."""
    from harness.timeline import FAULT_CLEARED, FAULT_REVERT_START

    start = timeline.first(FAULT_REVERT_START, after_ns=trip.t_crossed_ns)
    cleared = timeline.first(FAULT_CLEARED, after_ns=trip.t_crossed_ns)

    def secs(e: Any) -> float | None:
        return None if e is None else round((e.t_ns - trip.t_crossed_ns) / 1e9, 6)

    return {"time_to_revert_s": secs(start), "time_to_cleared_s": secs(cleared)}
