"""Sliding windows that aggregate call outcomes for failure-rate and slow-call-rate decisions.

Both windows share one trick that keeps the success path to a single integer add:

* ``n`` counts records; the breaker increments it inline for a fast success and only
  re-evaluates rates when ``n == minimum_calls`` (the one moment a success can push the
  rate over a threshold: when the window first becomes big enough).
* ``bucket_end`` is the clock time at which the window must roll; the breaker takes the
  slow path when ``now >= bucket_end``. A count window never rolls (``bucket_end`` = ∞).

CountWindow: failures and slow calls are kept as the sequence numbers at which they
happened, so a success needs no ring write; eviction happens when a failure is added.

TimeWindow: resilience4j's time-based window, ``size`` buckets of one second. Totals span
the whole window; the current bucket's share is ``total - base`` and is written into its
slot only when the window rolls.
"""

from __future__ import annotations

from collections import deque

__all__ = ["NEVER", "CountWindow", "TimeWindow"]

NEVER = 1 << 63  # a clock value no monotonic_ns() will reach


class CountWindow:
    """The last ``size`` recorded calls."""

    __slots__ = ("size", "n", "bucket_end", "_fails", "_slows", "_recorded_before")

    def __init__(self, size: int) -> None:
        self.size = size
        self.bucket_end = NEVER
        self.n = 0
        self._fails: deque[int] = deque()
        self._slows: deque[int] = deque()
        self._recorded_before = 0

    def record(self, now: int, failed: bool, slow: bool) -> None:
        """Slow-path record (failure and/or slow call, or any call when listeners need it)."""
        self.n = n = self.n + 1
        oldest = n - self.size
        if failed:
            self._fails.append(n)
        if slow:
            self._slows.append(n)
        for dq in (self._fails, self._slows):
            while dq and dq[0] <= oldest:
                dq.popleft()

    def roll(self, now: int) -> None:
        """Count windows do not depend on time."""

    def counts(self, now: int | None = None) -> tuple[int, int, int]:
        """(calls, failures, slow calls) currently inside the window."""
        oldest = self.n - self.size
        for dq in (self._fails, self._slows):
            while dq and dq[0] <= oldest:
                dq.popleft()
        return min(self.n, self.size), len(self._fails), len(self._slows)

    def recorded(self) -> int:
        """Calls recorded since creation (survives reset)."""
        return self._recorded_before + self.n

    def reset(self) -> None:
        self._recorded_before += self.n
        self.n = 0
        self._fails.clear()
        self._slows.clear()


class TimeWindow:
    """Calls of the last ``size`` seconds, in one-second buckets."""

    __slots__ = ("size", "bucket_ns", "n", "bucket_end", "_failures", "_slow", "_epoch",
                 "_base_n", "_base_f", "_base_s", "_calls", "_fails", "_slows", "_recorded_before")

    def __init__(self, size: int, bucket_ns: int = 1_000_000_000) -> None:
        self.size = size
        self.bucket_ns = bucket_ns
        self._calls = [0] * size
        self._fails = [0] * size
        self._slows = [0] * size
        self._recorded_before = 0
        self._clear(None)

    def _clear(self, now: int | None) -> None:
        self.n = self._failures = self._slow = 0
        self._base_n = self._base_f = self._base_s = 0
        for i in range(self.size):
            self._calls[i] = self._fails[i] = self._slows[i] = 0
        self._epoch = None if now is None else now // self.bucket_ns
        self.bucket_end = 0 if now is None else (self._epoch + 1) * self.bucket_ns

    def roll(self, now: int) -> None:
        """Close the current bucket and expire buckets older than ``size`` seconds."""
        if now < self.bucket_end:
            return
        epoch = now // self.bucket_ns
        old = self._epoch
        if old is None:
            self._epoch = epoch
            self.bucket_end = (epoch + 1) * self.bucket_ns
            return
        size = self.size
        # close the current bucket into its slot
        slot = old % size
        self._calls[slot] = self.n - self._base_n
        self._fails[slot] = self._failures - self._base_f
        self._slows[slot] = self._slow - self._base_s
        self._recorded_before += self._calls[slot]
        if epoch - old >= size:
            recorded = self._recorded_before
            self._clear(now)
            self._recorded_before = recorded
            return
        for e in range(old + 1, epoch + 1):  # each new epoch reuses the slot of epoch - size
            s = e % size
            self.n -= self._calls[s]
            self._failures -= self._fails[s]
            self._slow -= self._slows[s]
            self._calls[s] = self._fails[s] = self._slows[s] = 0
        self._base_n, self._base_f, self._base_s = self.n, self._failures, self._slow
        self._epoch = epoch
        self.bucket_end = (epoch + 1) * self.bucket_ns

    def record(self, now: int, failed: bool, slow: bool) -> None:
        if now >= self.bucket_end:
            self.roll(now)
        self.n += 1
        if failed:
            self._failures += 1
        if slow:
            self._slow += 1

    def counts(self, now: int | None = None) -> tuple[int, int, int]:
        if now is not None:
            self.roll(now)
        return self.n, self._failures, self._slow

    def recorded(self) -> int:
        return self._recorded_before + self.n - self._base_n

    def reset(self) -> None:
        recorded = self.recorded()
        self._clear(None)
        self._recorded_before = recorded
