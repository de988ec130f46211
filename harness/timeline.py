"""One clock for a run: every event and probe sample carries `time.monotonic_ns()`.

CLOCK_MONOTONIC is shared by all processes on a host, so the app, the load process and the
harness agree. One anchor pair (monotonic_ns, wall-clock UTC) converts to wall time for display
and for comparing with server-side timestamps (RPO). See docs/metrics.md.

    probe task ──sample()──┐
    fault      ──event()───┼──► Timeline (append-only, thread-safe) ──► measure.py, results.py
    breaker    ──event()───┘
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Kinds of record, as named in docs/metrics.md.
FAULT_APPLY_START = "fault.apply_start"
FAULT_ACTIVE = "fault.active"
FAULT_REVERT_START = "fault.revert_start"
FAULT_CLEARED = "fault.cleared"
PROBE = "probe"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at `t_ns` (monotonic): a fault step, a breaker change, a drill step."""

    t_ns: int
    kind: str
    source: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe observation; `t_ns` is when the probe was sent. Good = ok within its threshold."""

    t_ns: int
    probe: str
    ok: bool
    latency_ns: int
    error: str | None = None
    good: bool = False


class Timeline:
    """Append-only record of a run's events and samples on one monotonic clock."""

    def __init__(self, anchor_ns: int | None = None, anchor_wall: datetime | None = None) -> None:
        self.anchor_ns = time.monotonic_ns() if anchor_ns is None else anchor_ns
        self.anchor_wall = anchor_wall or datetime.now(UTC)
        self._events: list[Event] = []
        self._samples: list[Sample] = []
        self._lock = threading.Lock()

    @staticmethod
    def now_ns() -> int:
        return time.monotonic_ns()

    def event(self, kind: str, source: str = "", t_ns: int | None = None, **data: Any) -> Event:
        ev = Event(time.monotonic_ns() if t_ns is None else t_ns, kind, source, data)
        with self._lock:
            self._events.append(ev)
        return ev

    def merge_jsonl(self, path: str | Path, since_ns: int | None = None) -> int:
        """Add events another process wrote as JSONL ({"t_ns", "kind", "source", ...}) on the same
        CLOCK_MONOTONIC — the app's breaker and recovery events. Torn or foreign lines are skipped."""
        since = self.anchor_ns if since_ns is None else since_ns
        added = 0
        try:
            lines = Path(path).read_text().splitlines()
        except FileNotFoundError:
            return 0
        for line in lines:
            try:
                raw = json.loads(line)
                t_ns, kind, source = int(raw.pop("t_ns")), str(raw.pop("kind")), str(raw.pop("source", ""))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if t_ns >= since:
                self.event(kind, source, t_ns=t_ns, **raw)
                added += 1
        return added

    def add_sample(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return sorted(self._events, key=lambda e: e.t_ns)

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return sorted(self._samples, key=lambda s: s.t_ns)

    def first(self, kind: str, source: str | None = None, after_ns: int | None = None) -> Event | None:
        """The earliest event of `kind` (optionally from `source`, at or after `after_ns`)."""
        for ev in self.events:
            if ev.kind == kind and (source is None or ev.source == source) and (
                after_ns is None or ev.t_ns >= after_ns
            ):
                return ev
        return None

    def of_kind(self, prefix: str) -> Iterator[Event]:
        return (e for e in self.events if e.kind.startswith(prefix))

    def wall(self, t_ns: int) -> datetime:
        """The wall-clock UTC time of monotonic `t_ns`, through the run's anchor."""
        return self.anchor_wall + timedelta(microseconds=(t_ns - self.anchor_ns) / 1000)

    def mono(self, wall: datetime) -> int:
        """The monotonic time of a wall-clock instant (e.g. a server-side commit timestamp)."""
        return self.anchor_ns + int((wall - self.anchor_wall).total_seconds() * 1e9)

    def rel_s(self, t_ns: int) -> float:
        """Seconds since the anchor, for charts and tables."""
        return (t_ns - self.anchor_ns) / 1e9
