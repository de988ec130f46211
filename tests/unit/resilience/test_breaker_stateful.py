"""Hypothesis state machine: the breaker against a small reference model.

The model is written for clarity, not speed: it keeps every outcome with its time and
recomputes windows from scratch. Any divergence in state, counts, retry time or HALF_OPEN
admission fails the run, and a listener checks every transition against the table.
Configs with and without slow-call detection and listeners of each kind exercise every
CLOSED path (plain, timed, guarded); some open for a backoff function's wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from resilience.breaker import BreakerListener, BreakerState, CircuitBreaker
from resilience.breaker.state import is_allowed
from resilience.clock import FakeClock
from resilience.errors import CircuitOpenError

S = BreakerState
NS = 1_000_000_000
SLOW_NS = 2 * NS


class Boom(Exception):
    pass


class Skip(Exception):
    pass


@dataclass
class Model:
    ft: int | None
    fr: float | None
    sr: float | None
    kind: str
    size: int
    min_calls: int
    permits: int
    wait_ns: int
    backoff: object = None
    attempts: int = 0
    state: S = S.CLOSED
    epoch: int = 0
    run: int = 0
    open_until: int = 0
    outcomes: list[tuple[int, bool, bool]] = field(default_factory=list)
    issued: int = 0
    done: int = 0
    failed: int = 0
    slow: int = 0

    @property
    def uses_rates(self) -> bool:
        return self.fr is not None or self.sr is not None

    def window(self, now: int) -> tuple[int, int, int]:
        if self.kind == "count":
            win = self.outcomes[-self.size:]
        else:
            cur = now // NS
            win = [o for o in self.outcomes if o[0] // NS > cur - self.size]
        return len(win), sum(o[1] for o in win), sum(o[2] for o in win)

    def go(self, new: S, now: int) -> None:
        assert is_allowed(self.state, new)
        old, self.state = self.state, new
        self.epoch += 1
        if new is S.CLOSED or old is S.CLOSED:
            self.outcomes.clear()
            self.run = 0
        if new is S.CLOSED:
            self.attempts = 0
        if new is S.OPEN:
            self.attempts += 1
            wait = self.wait_ns if self.backoff is None else round(self.backoff(self.attempts) * NS)
            self.open_until = now + wait
        if new is S.HALF_OPEN:
            self.issued = self.done = self.failed = self.slow = 0

    def admit(self, now: int) -> int | None:
        """Epoch token, -1 for pass-through, None if rejected."""
        if self.state is S.CLOSED:
            return self.epoch
        if self.state is S.DISABLED:
            return -1
        if self.state is S.OPEN:
            if now < self.open_until:
                return None
            self.go(S.HALF_OPEN, now)
        if self.state is S.HALF_OPEN and self.issued < self.permits:
            self.issued += 1
            return self.epoch
        return None

    def record(self, token: int, now: int, kind: str, slow: bool) -> None:
        if token == -1 or token != self.epoch or self.state not in (S.CLOSED, S.HALF_OPEN):
            return
        if kind == "skip":
            if self.state is S.HALF_OPEN:
                self.issued -= 1
            return
        failed = kind == "fail"
        if self.state is S.CLOSED:
            self.outcomes.append((now, failed, slow))
            self.run = self.run + 1 if failed else 0
            if self.ft and self.run >= self.ft:
                self.go(S.OPEN, now)
                return
            if self.uses_rates:
                calls, fails, slows = self.window(now)
                if calls >= self.min_calls and (
                    (self.fr is not None and fails * 100 >= self.fr * calls)
                    or (self.sr is not None and slows * 100 >= self.sr * calls)
                ):
                    self.go(S.OPEN, now)
            return
        self.done += 1
        self.failed += failed
        self.slow += slow
        if self.uses_rates:
            if self.done >= self.permits:
                bad = (self.fr is not None and self.failed * 100 >= self.fr * self.permits) or (
                    self.sr is not None and self.slow * 100 >= self.sr * self.permits)
                self.go(S.OPEN if bad else S.CLOSED, now)
        elif self.failed:
            self.go(S.OPEN, now)
        elif self.done >= self.permits:
            self.go(S.CLOSED, now)


class TransitionChecker(BreakerListener):
    def __init__(self) -> None:
        self.seen: list[tuple[S, S]] = []

    def on_state_change(self, event) -> None:
        assert is_allowed(event.old, event.new), f"illegal {event.old} -> {event.new}"
        self.seen.append((event.old, event.new))


class FailuresOnly(TransitionChecker):
    """Overrides on_failure: CLOSED calls stay on a lock-free (timed) fast path."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def on_failure(self, event) -> None:
        self.failures += 1


class EveryHook(TransitionChecker):
    """Overrides the per-call hooks too, which moves CLOSED calls off the fast path."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes = 0

    def on_success(self, event) -> None:
        self.outcomes += 1

    def on_failure(self, event) -> None:
        self.outcomes += 1


def linear(attempt: int) -> float:
    return attempt * 0.5


def doubling(attempt: int) -> float:
    return min(2.0 ** attempt, 8.0)


configs = st.fixed_dictionaries({
    "failure_threshold": st.sampled_from([None, 1, 2, 3, 5]),
    "failure_rate_threshold": st.sampled_from([None, 25, 50, 100]),
    "slow_call_rate_threshold": st.sampled_from([None, 50, 100]),
    "sliding_window_type": st.sampled_from(["count", "time"]),
    "sliding_window_size": st.integers(3, 6),
    "minimum_calls": st.integers(1, 3),
    "half_open_permitted_calls": st.integers(1, 3),
    "wait_in_open": st.sampled_from([1, 5]),
    "wait_in_open_backoff": st.sampled_from([None, None, linear, doubling]),
    # 2 s: at least a time bucket (the end-of-bucket test proves "not slow"); 0.5 s: below one
    "slow_call_duration_threshold": st.sampled_from([None, None, SLOW_NS / NS, 0.5]),
}).filter(lambda c: c["failure_threshold"] or c["failure_rate_threshold"] or c["slow_call_rate_threshold"]
          ).filter(lambda c: c["slow_call_rate_threshold"] is None or c["slow_call_duration_threshold"])


class BreakerMachine(RuleBasedStateMachine):
    @initialize(cfg=configs, listen=st.sampled_from(["none", "transitions", "failures", "every hook"]))
    def setup(self, cfg, listen):
        self.clock = FakeClock()
        self.checker = {"every hook": EveryHook, "failures": FailuresOnly}.get(listen, TransitionChecker)()
        self.breaker = CircuitBreaker(
            "m", clock=self.clock, ignore_exceptions=(Skip,),
            listeners=[] if listen == "none" else [self.checker], **cfg)
        slow = cfg["slow_call_duration_threshold"]
        self.slow_ns = None if slow is None else round(slow * NS)
        self.model = Model(
            ft=cfg["failure_threshold"], fr=cfg["failure_rate_threshold"], sr=cfg["slow_call_rate_threshold"],
            kind=cfg["sliding_window_type"], size=cfg["sliding_window_size"], min_calls=cfg["minimum_calls"],
            permits=cfg["half_open_permitted_calls"], wait_ns=cfg["wait_in_open"] * NS,
            backoff=cfg["wait_in_open_backoff"])
        self.held: list[tuple[int, int]] = []  # tokens of calls held open with the context manager
        self.admitted_in_half_open = 0

    def _run(self, kind: str, seconds: float):
        def fn():
            self.clock.advance(seconds)
            if kind == "fail":
                raise Boom()
            if kind == "skip":
                raise Skip()
            return 1
        return fn

    @rule(kind=st.sampled_from(["ok", "ok", "fail", "skip"]), seconds=st.sampled_from([0, 0.5, 2.5]))
    def call(self, kind, seconds):
        now = self.clock.monotonic_ns()
        token = self.model.admit(now)
        try:
            self.breaker.call(self._run(kind, seconds))
        except CircuitOpenError:
            assert token is None, "breaker rejected a call the model admits"
            return
        except (Boom, Skip):
            pass
        assert token is not None, "breaker admitted a call the model rejects"
        self.model.record(token, self.clock.monotonic_ns(), kind, self._slow(seconds * NS))

    @rule()
    def enter_held(self):
        now = self.clock.monotonic_ns()
        token = self.model.admit(now)
        try:
            self.breaker.__enter__()
        except CircuitOpenError:
            assert token is None
            return
        assert token is not None
        self.held.append((token, now))

    @precondition(lambda self: self.held)
    @rule(kind=st.sampled_from(["ok", "fail", "skip"]), seconds=st.sampled_from([0, 2.5]))
    def exit_held(self, kind, seconds):
        token, start = self.held.pop()
        self.clock.advance(seconds)
        exc = {"ok": None, "fail": Boom(), "skip": Skip()}[kind]
        self.breaker.__exit__(type(exc) if exc else None, exc, None)
        end = self.clock.monotonic_ns()
        self.model.record(token, end, kind, self._slow(end - start))

    def _slow(self, duration_ns: float) -> bool:
        return self.slow_ns is not None and duration_ns >= self.slow_ns

    @rule(seconds=st.sampled_from([0.3, 1, 4, 10]))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @rule(action=st.sampled_from(["forced_open", "disabled", "reset"]))
    def operator(self, action):
        now = self.clock.monotonic_ns()
        target = {"forced_open": S.FORCED_OPEN, "disabled": S.DISABLED, "reset": S.CLOSED}[action]
        getattr(self.breaker, "reset" if action == "reset" else f"transition_to_{action}")()
        if action == "reset" and self.model.state is S.CLOSED:
            self.model.outcomes.clear()
            self.model.run = 0
            self.model.attempts = 0
        elif self.model.state is not target:
            self.model.go(target, now)

    @invariant()
    def closed_uses_the_expected_path(self):
        if not hasattr(self, "model") or self.model.state is not S.CLOSED:
            return
        listen = type(self.checker).__name__ if self.breaker.listeners else "none"
        if listen == "EveryHook":
            expected = "_guarded"
        elif self.model.kind == "time":
            expected = "_make_closed_bucketed" if (self.slow_ns or NS) >= NS else "_make_closed_timed"
        elif self.slow_ns is not None:
            expected = "_make_closed_timed"
        else:
            expected = "_make_closed_started" if listen == "FailuresOnly" else "_make_closed_plain"
        event(f"CLOSED path {expected}")
        assert expected in self.breaker.call.__qualname__

    @invariant()
    def same_state(self):
        if not hasattr(self, "model"):
            return
        assert self.breaker.state is self.model.state

    @invariant()
    def counts_consistent(self):
        if not hasattr(self, "model"):
            return
        m = self.breaker.metrics()
        assert m.calls == m.successes + m.failures
        assert m.failures >= 0 and m.successes >= 0 and m.slow_calls <= m.calls
        assert m.window_calls >= m.window_failures >= 0
        if self.model.state is S.CLOSED:
            now = self.clock.monotonic_ns()
            assert (m.window_calls, m.window_failures, m.window_slow_calls) == self.model.window(now)
            expected_run = self.model.run
            assert m.consecutive_failures == expected_run
        if self.model.state is S.OPEN:
            assert m.retry_after * NS == pytest.approx(max(0, self.model.open_until - self.clock.monotonic_ns()))

    @invariant()
    def half_open_never_over_admits(self):
        if not hasattr(self, "model"):
            return
        if self.model.state is S.HALF_OPEN:
            assert 0 <= self.model.issued <= self.model.permits
            assert self.breaker._ho_issued == self.model.issued


BreakerMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestBreakerMachine = BreakerMachine.TestCase
