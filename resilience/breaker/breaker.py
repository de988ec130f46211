"""CircuitBreaker: fail fast while a dependency is down, probe it, close when it is back.

Speed is a feature here (an app wraps every database call), so the design is a state
pattern at the level of bound methods: on every transition the breaker rebinds
``self.call`` / ``self.acall`` to the cheapest function valid for the new state::

    CLOSED, no timing needed   _closed_plain     call fn; on success one int add, one compare
    CLOSED, failure listener   _closed_started   + a start time (for CallFailed.duration_ns)
    CLOSED, time window        _closed_bucketed  + one end-time compare with the bucket end; a
                                                 start time only with slow calls ≥ 1 s or a
                                                 failure listener (a call inside one 1-s bucket
                                                 cannot have lasted ≥ 1 s)
    CLOSED, other slow calls   _closed_timed     + start, end; end < bucket end, end - start < slow
    OPEN                       _open_reject      one clock read, raise CircuitOpenError
    anything else              _guarded          lock, admission, full bookkeeping, events

The bucket end is a closure constant: a call that ends after it takes the locked path,
which rolls the window and rebuilds the closures (at most once per bucket).

Failures, slow calls, window rolls and transitions always go through the locked slow path,
so the hot path holds no lock: under the GIL a success count may at worst lose an
increment between threads, while transitions and HALF_OPEN admission stay exact.
Listener hooks are only called when some listener overrides them; only an ``on_success``
listener moves CLOSED calls off the fast path.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from resilience.breaker.config import BreakerConfig, to_seconds
from resilience.breaker.events import (
    BreakerListener,
    CallFailed,
    CallRejected,
    CallSucceeded,
    SlowCall,
    StateChanged,
    overridden_hooks,
)
from resilience.breaker.state import BreakerState, is_allowed
from resilience.breaker.window import NEVER, CountWindow, TimeWindow
from resilience.clock import Clock, SystemClock
from resilience.errors import CircuitOpenError, _CircuitOpenNs

__all__ = ["BreakerMetrics", "CircuitBreaker", "IllegalTransition"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
DISABLED = BreakerState.DISABLED
FORCED_OPEN = BreakerState.FORCED_OPEN

_IGNORE, _FAILURE, _SUCCESS = 0, 1, 2
_PASS_THROUGH = -1  # admission token for DISABLED: run, record nothing


class IllegalTransition(RuntimeError):
    """A transition not in ``state.ALLOWED_TRANSITIONS`` was attempted (a bug, never expected)."""


@dataclass(frozen=True, slots=True)
class BreakerMetrics:
    """A snapshot for /metrics; ``state_code`` is the numeric gauge value (see BreakerState.code)."""

    name: str
    state: BreakerState
    state_code: int
    calls: int
    successes: int
    failures: int
    slow_calls: int
    rejected: int
    ignored: int
    window_calls: int
    window_failures: int
    window_slow_calls: int
    failure_rate: float
    slow_call_rate: float
    consecutive_failures: int
    times_opened: int
    retry_after: float


class CircuitBreaker:
    """A circuit breaker for sync and async callables.

    Use it as ``breaker.call(fn, *a)``, ``await breaker.acall(coro_fn, *a)``, as a decorator
    (``@breaker`` on a def or async def), or as ``with breaker:`` / ``async with breaker:``.
    Settings come from ``config`` or keyword arguments (see :class:`BreakerConfig`).
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock | None = None,
        listeners: Iterable[BreakerListener] = (),
        **settings: Any,
    ) -> None:
        if config is not None and settings:
            raise TypeError("CircuitBreaker: pass either config= or keyword settings, not both")
        self.name = name
        self.config = cfg = config if config is not None else BreakerConfig(**settings)
        self.clock = clock if clock is not None else SystemClock()
        self._now = self.clock.monotonic_ns
        self._lock = threading.RLock()
        self._listeners: list[BreakerListener] = []
        self._hooks: dict[str, list[BreakerListener]] = {}
        self._on_rejected_hooks = False
        self._ctx: contextvars.ContextVar[tuple | None] = contextvars.ContextVar(f"breaker-{name}", default=None)

        # precomputed settings (integers, ns)
        self._ft = cfg.failure_threshold or 0
        self._fr = cfg.failure_rate_threshold
        self._sr = cfg.slow_call_rate_threshold
        self._min_calls = cfg.minimum_calls if cfg.uses_rates else 0
        slow = cfg.slow_call_duration_threshold
        self._slow_ns = round(to_seconds(slow) * 1e9) if slow is not None else NEVER
        self._wait_ns = round(to_seconds(cfg.wait_in_open) * 1e9)
        self._ho_permits = cfg.half_open_permitted_calls
        self._record_types = cfg.record_exceptions
        self._ignore_types = cfg.ignore_exceptions
        self._window = (TimeWindow(cfg.sliding_window_size) if cfg.sliding_window_type == "time"
                        else CountWindow(cfg.sliding_window_size))
        self._fast_bucket_end = NEVER  # the bucket end the current closures were built with

        # state
        self._state = CLOSED
        self._epoch = 0
        # consecutive failures: a run continues only while no other call was recorded since
        # the last failure, so a success never has to touch it (see _consecutive)
        self._run = 0
        self._last_fail_rec = -1
        self._open_until = 0
        self._open_attempts = 0
        self._ho_issued = self._ho_done = self._ho_failed = self._ho_slow = 0
        # lifetime counters (successes are derived: recorded - failures)
        self._failures = self._slow_calls = self._ignored = 0
        self._rejections = itertools.count(1)  # next() is atomic under the GIL: exact across threads
        self._count_rejection = self._rejections.__next__
        self._rejections_read = 0
        self._ho_recorded = 0
        self._times_opened = 0

        for listener in listeners:
            self.add_listener(listener)
        self._select_paths()

    # ------------------------------------------------------------------ public API
    @property
    def state(self) -> BreakerState:
        """Current state. OPEN stays OPEN until a call arrives after ``wait_in_open``."""
        return self._state

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` under the breaker (rebound per state; this body is never used)."""
        raise AssertionError("unreachable: rebound in __init__")  # pragma: no cover

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` under the breaker (rebound per state)."""
        raise AssertionError("unreachable: rebound in __init__")  # pragma: no cover

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorator for a function or coroutine function."""
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.acall(fn, *args, **kwargs)

            async_wrapper.breaker = self  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, *args, **kwargs)

        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    def __enter__(self) -> CircuitBreaker:
        token = self._acquire()
        self._ctx.set((token, self._now(), self._ctx.get()))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        frame = self._ctx.get()
        assert frame is not None, "CircuitBreaker.__exit__ without __enter__"
        token, start, prev = frame
        self._ctx.set(prev)
        end = self._now()
        if token == _PASS_THROUGH:
            return
        if exc is None:
            self._on_success(token, start, end)
        else:
            self._on_exception(token, exc, start, end)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def add_listener(self, listener: BreakerListener) -> None:
        with self._lock:
            self._listeners.append(listener)
            self._rebuild_hooks()

    def remove_listener(self, listener: BreakerListener) -> None:
        with self._lock:
            self._listeners.remove(listener)
            self._rebuild_hooks()

    @property
    def listeners(self) -> tuple[BreakerListener, ...]:
        return tuple(self._listeners)

    # operator controls (resilience4j names)
    def transition_to_closed(self) -> None:
        self._manual(CLOSED)

    def transition_to_open(self) -> None:
        self._manual(OPEN)

    def transition_to_half_open(self) -> None:
        self._manual(HALF_OPEN)

    def transition_to_disabled(self) -> None:
        self._manual(DISABLED)

    def transition_to_forced_open(self) -> None:
        self._manual(FORCED_OPEN)

    def reset(self) -> None:
        """Back to CLOSED with an empty window, from any state."""
        with self._lock:
            if self._state is CLOSED:
                self._reset_closed()
                self._refresh_fast()
            else:
                self._transition(CLOSED, self._now(), "reset")

    @property
    def rejected(self) -> int:
        """Calls refused so far. Reading advances the counter once, so reads are subtracted."""
        self._rejections_read += 1
        return next(self._rejections) - self._rejections_read

    def retry_after(self) -> float:
        """Seconds until a trial call may run (0 when calls are admitted, inf when FORCED_OPEN)."""
        st = self._state
        if st is FORCED_OPEN:
            return math.inf
        if st is OPEN:
            return max(0, self._open_until - self._now()) / 1e9
        return 0.0

    def metrics(self) -> BreakerMetrics:
        with self._lock:
            now = self._now()
            w_calls, w_fail, w_slow = self._window.counts(now)
            self._refresh_fast()
            recorded = self._window.recorded() + self._ho_recorded
            return BreakerMetrics(
                name=self.name,
                state=self._state,
                state_code=self._state.code,
                calls=recorded,
                successes=recorded - self._failures,
                failures=self._failures,
                slow_calls=self._slow_calls,
                rejected=self.rejected,
                ignored=self._ignored,
                window_calls=w_calls,
                window_failures=w_fail,
                window_slow_calls=w_slow,
                failure_rate=(100.0 * w_fail / w_calls) if w_calls else 0.0,
                slow_call_rate=(100.0 * w_slow / w_calls) if w_calls else 0.0,
                consecutive_failures=self._consecutive() if self._state is CLOSED else 0,
                times_opened=self._times_opened,
                retry_after=self.retry_after(),
            )

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"

    # ------------------------------------------------------------------ fast paths
    # Built as closures whenever the state (or the set of listeners) changes: every setting
    # they read is a closure constant, which is cheaper than an attribute of self, and the
    # stored function needs no method binding. ``fn(*args)`` when there are no keyword
    # arguments skips copying an empty dict on every call.
    def _make_closed_plain(self):
        now, w, min_calls = self._now, self._window, self._min_calls
        on_exception, check_rates = self._on_exception, self._check_rates

        def call(fn, /, *args, **kwargs):
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                on_exception(None, exc, 0, now())
                raise
            w.n = n = w.n + 1
            if n == min_calls:
                check_rates(now())
            return result

        async def acall(fn, /, *args, **kwargs):
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except BaseException as exc:
                on_exception(None, exc, 0, now())
                raise
            w.n = n = w.n + 1
            if n == min_calls:
                check_rates(now())
            return result

        return call, acall

    def _make_closed_started(self):
        """Count window, no slow calls, a failure listener: time failures, not successes."""
        now, w, min_calls = self._now, self._window, self._min_calls
        on_exception, check_rates = self._on_exception, self._check_rates

        def call(fn, /, *args, **kwargs):
            start = now()
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                on_exception(None, exc, start, now())
                raise
            w.n = n = w.n + 1
            if n == min_calls:
                check_rates(now())
            return result

        async def acall(fn, /, *args, **kwargs):
            start = now()
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except BaseException as exc:
                on_exception(None, exc, start, now())
                raise
            w.n = n = w.n + 1
            if n == min_calls:
                check_rates(now())
            return result

        return call, acall

    def _make_closed_bucketed(self, with_start: bool):
        """Time window, slow threshold ≥ the bucket (or none): ``end < bucket_end`` is the whole test.

        A call that started in the current bucket and ends before its end lasted less than one
        bucket, so less than the slow threshold. The closures are rebuilt after every roll, so the
        bucket began before they were built, hence before the call started.
        """
        now, w, min_calls, bucket_end = self._now, self._window, self._min_calls, self._window.bucket_end
        on_exception, on_success, check_rates = self._on_exception, self._on_success, self._check_rates

        def call(fn, /, *args, **kwargs):
            start = now() if with_start else 0
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                on_exception(None, exc, start, now())
                raise
            if (end := now()) < bucket_end:
                w.n = n = w.n + 1
                if n == min_calls:
                    check_rates(end)
                return result
            on_success(None, start, end)  # slow call or window roll: the locked path
            return result

        async def acall(fn, /, *args, **kwargs):
            start = now() if with_start else 0
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except BaseException as exc:
                on_exception(None, exc, start, now())
                raise
            if (end := now()) < bucket_end:
                w.n = n = w.n + 1
                if n == min_calls:
                    check_rates(end)
                return result
            on_success(None, start, end)
            return result

        return call, acall

    def _make_closed_timed(self):
        """Slow-call detection below one bucket (or with a count window): time every call."""
        now, w, min_calls, slow_ns = self._now, self._window, self._min_calls, self._slow_ns
        bucket_end = w.bucket_end
        on_exception, on_success, check_rates = self._on_exception, self._on_success, self._check_rates

        def call(fn, /, *args, **kwargs):
            start = now()
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                on_exception(None, exc, start, now())
                raise
            if (end := now()) < bucket_end and end - start < slow_ns:
                w.n = n = w.n + 1
                if n == min_calls:
                    check_rates(end)
                return result
            on_success(None, start, end)  # slow call or window roll: the locked path
            return result

        async def acall(fn, /, *args, **kwargs):
            start = now()
            try:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
            except BaseException as exc:
                on_exception(None, exc, start, now())
                raise
            if (end := now()) < bucket_end and end - start < slow_ns:
                w.n = n = w.n + 1
                if n == min_calls:
                    check_rates(end)
                return result
            on_success(None, start, end)
            return result

        return call, acall

    def _make_open_reject(self):
        now, until, name, guarded, aguarded = self._now, self._open_until, self.name, self._guarded, self._aguarded
        rejected = self._count_rejection
        emit = self._emit_rejected if self._on_rejected_hooks else None

        def call(fn, /, *args, **kwargs):
            t = now()
            if t < until:
                rejected()
                if emit is not None:
                    emit(t, (until - t) / 1e9)
                raise _CircuitOpenNs(name, until - t)
            return guarded(fn, *args, **kwargs)  # wait is over: HALF_OPEN admission

        async def acall(fn, /, *args, **kwargs):
            t = now()
            if t < until:
                rejected()
                if emit is not None:
                    emit(t, (until - t) / 1e9)
                raise _CircuitOpenNs(name, until - t)
            return await aguarded(fn, *args, **kwargs)

        return call, acall

    def _guarded(self, fn, /, *args, **kwargs):
        token = self._acquire()
        if token == _PASS_THROUGH:
            return fn(*args, **kwargs)
        now = self._now
        start = now()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(token, exc, start, now())
            raise
        self._on_success(token, start, now())
        return result

    async def _aguarded(self, fn, /, *args, **kwargs):
        token = self._acquire()
        if token == _PASS_THROUGH:
            return await fn(*args, **kwargs)
        now = self._now
        start = now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(token, exc, start, now())
            raise
        self._on_success(token, start, now())
        return result

    def _select_paths(self) -> None:
        """Bind call/acall to the cheapest implementation valid right now."""
        st = self._state
        # Only on_success needs every call on the locked path: failures and slow calls already
        # take it (_on_exception / _on_success emit there). A failure listener wants durations,
        # so it gets the timed fast path.
        self._fast_bucket_end = self._window.bucket_end
        if st is CLOSED and not self._hooks.get("on_success"):
            self.call, self.acall = self._make_closed()
        elif st is OPEN:
            self.call, self.acall = self._make_open_reject()
        else:
            self.call, self.acall = self._guarded, self._aguarded

    def _make_closed(self):
        """The cheapest CLOSED fast path for this window, slow threshold and set of listeners."""
        slow = self._slow_ns != NEVER
        timed_failures = bool(self._hooks.get("on_failure"))
        w = self._window
        if isinstance(w, TimeWindow):
            if not slow or self._slow_ns >= w.bucket_ns:
                return self._make_closed_bucketed(with_start=slow or timed_failures)
            return self._make_closed_timed()
        if slow:
            return self._make_closed_timed()
        return self._make_closed_started() if timed_failures else self._make_closed_plain()

    def _refresh_fast(self) -> None:
        """After the locked path rolled (or reset) the window: rebuild closures for the new bucket end."""
        if self._state is CLOSED and self._window.bucket_end != self._fast_bucket_end:
            self._select_paths()

    # ------------------------------------------------------------------ slow paths
    def _acquire(self) -> int:
        """Admit a call or raise CircuitOpenError; returns the epoch the permit belongs to."""
        retry = None
        with self._lock:
            st = self._state
            if st is CLOSED:
                return self._epoch
            if st is DISABLED:
                return _PASS_THROUGH
            now = self._now()
            if st is OPEN:
                if now < self._open_until:
                    retry = (self._open_until - now) / 1e9
                else:
                    self._transition(HALF_OPEN, now, "wait_in_open elapsed")
                    st = HALF_OPEN
            if st is HALF_OPEN:
                if self._ho_issued < self._ho_permits:
                    self._ho_issued += 1
                    return self._epoch
                retry = 0.0
            elif st is FORCED_OPEN:
                retry = math.inf
            self._count_rejection()
        if self._on_rejected_hooks:
            self._emit_rejected(now, retry)
        raise CircuitOpenError(self.name, retry)

    def _classify(self, exc: BaseException) -> int:
        if not isinstance(exc, Exception):
            return _IGNORE  # cancellation, KeyboardInterrupt, SystemExit: not the dependency's fault
        if self._ignore_types and isinstance(exc, self._ignore_types):
            return _IGNORE
        cfg = self.config
        if cfg.ignore_exception is not None and cfg.ignore_exception(exc):
            return _IGNORE
        if cfg.record_exception is not None:
            return _FAILURE if cfg.record_exception(exc) else _SUCCESS
        return _FAILURE if isinstance(exc, self._record_types) else _SUCCESS

    def _on_exception(self, token: int | None, exc: BaseException, start: int, end: int) -> None:
        try:
            kind = self._classify(exc)
        except Exception:  # a broken predicate must not hide the caller's exception
            log.exception("breaker %r: exception predicate failed; counting as failure", self.name)
            kind = _FAILURE
        if kind == _SUCCESS:
            self._on_success(token, start, end)
            return
        with self._lock:
            if not self._is_current(token):
                return
            if kind == _IGNORE:
                self._ignored += 1
                if self._state is HALF_OPEN:
                    self._ho_issued -= 1  # give the permit back
                return
            slow = start != 0 and end - start >= self._slow_ns
            self._failures += 1
            if slow:
                self._slow_calls += 1
            if self._state is CLOSED:
                w = self._window
                self._run = self._run + 1 if w.recorded() == self._last_fail_rec else 1
                w.record(end or self._now(), True, slow)
                self._last_fail_rec = w.recorded()
                self._check_rates(end or self._now())
            else:
                self._ho_recorded += 1
                self._ho_done += 1
                self._ho_failed += 1
                self._ho_slow += slow
                self._decide_half_open(end or self._now())
            self._refresh_fast()
        if self._hooks:
            if "on_failure" in self._hooks:
                self._emit("on_failure", CallFailed(self.name, end, end - start if start else 0, exc))
            if slow and "on_slow_call" in self._hooks:
                self._emit("on_slow_call", SlowCall(self.name, end, end - start, False))

    def _on_success(self, token: int | None, start: int, end: int) -> None:
        slow = end - start >= self._slow_ns if start else False
        with self._lock:
            if not self._is_current(token):
                return
            if slow:
                self._slow_calls += 1
            if self._state is CLOSED:
                self._window.record(end, False, slow)
                self._check_rates(end)
            else:
                self._ho_recorded += 1
                self._ho_done += 1
                self._ho_slow += slow
                self._decide_half_open(end)
            self._refresh_fast()
        if self._hooks:
            if "on_success" in self._hooks:
                self._emit("on_success", CallSucceeded(self.name, end, end - start if start else 0))
            if slow and "on_slow_call" in self._hooks:
                self._emit("on_slow_call", SlowCall(self.name, end, end - start, True))

    def _is_current(self, token: int | None) -> bool:
        """Outcomes of calls admitted in an earlier state are dropped (e.g. OPEN meanwhile)."""
        if token is None:  # fast path: admitted while CLOSED
            return self._state is CLOSED
        return token == self._epoch and self._state in (CLOSED, HALF_OPEN)

    def _check_rates(self, now: int) -> None:
        """In CLOSED: trip if any threshold is reached. Caller may or may not hold the lock."""
        with self._lock:
            if self._state is not CLOSED:
                return
            run = self._consecutive()
            if self._ft and run >= self._ft:
                self._transition(OPEN, now, f"{run} consecutive failures")
                return
            if self._min_calls:
                calls, fails, slow = self._window.counts(now)
                if calls >= self._min_calls:
                    if self._fr is not None and fails * 100 >= self._fr * calls:
                        self._transition(OPEN, now, f"failure rate {100 * fails / calls:.1f}% >= {self._fr}%")
                    elif self._sr is not None and slow * 100 >= self._sr * calls:
                        self._transition(OPEN, now, f"slow call rate {100 * slow / calls:.1f}% >= {self._sr}%")
                self._refresh_fast()

    def _decide_half_open(self, now: int) -> None:
        permits = self._ho_permits
        if self.config.uses_rates:
            if self._ho_done < permits:
                return
            if self._fr is not None and self._ho_failed * 100 >= self._fr * permits:
                self._transition(OPEN, now, f"{self._ho_failed}/{permits} trial calls failed")
            elif self._sr is not None and self._ho_slow * 100 >= self._sr * permits:
                self._transition(OPEN, now, f"{self._ho_slow}/{permits} trial calls slow")
            else:
                self._transition(CLOSED, now, f"{permits} trial calls healthy")
        elif self._ho_failed:
            self._transition(OPEN, now, "trial call failed")
        elif self._ho_done >= permits:
            self._transition(CLOSED, now, f"{permits} trial calls succeeded")

    def _consecutive(self) -> int:
        return self._run if self._window.recorded() == self._last_fail_rec else 0

    def _reset_closed(self) -> None:
        self._window.reset()
        self._run = 0
        self._last_fail_rec = -1
        self._open_attempts = 0

    def _manual(self, new: BreakerState) -> None:
        with self._lock:
            if self._state is not new:
                self._transition(new, self._now(), "manual")

    def _transition(self, new: BreakerState, now: int, reason: str) -> None:
        """Change state; caller holds the lock."""
        old = self._state
        if not is_allowed(old, new):
            raise IllegalTransition(f"breaker {self.name!r}: {old.value} -> {new.value} is not allowed")
        self._state = new
        self._epoch += 1
        if new is CLOSED:
            self._reset_closed()
        elif new is OPEN:
            self._open_attempts += 1
            self._times_opened += 1
            backoff = self.config.wait_in_open_backoff
            wait_ns = self._wait_ns
            if backoff is not None:
                try:
                    wait_ns = round(to_seconds(backoff(self._open_attempts)) * 1e9)
                except Exception:
                    log.exception("breaker %r: wait_in_open_backoff failed; using wait_in_open", self.name)
            self._open_until = now + max(0, wait_ns)
        elif new is HALF_OPEN:
            self._ho_issued = self._ho_done = self._ho_failed = self._ho_slow = 0
        if old is CLOSED:
            self._window.reset()
        self._select_paths()
        if "on_state_change" in self._hooks:
            self._emit("on_state_change", StateChanged(self.name, now, old, new, reason))

    # ------------------------------------------------------------------ listeners
    def _rebuild_hooks(self) -> None:
        hooks: dict[str, list[BreakerListener]] = {}
        for listener in self._listeners:
            for hook in overridden_hooks(listener):
                hooks.setdefault(hook, []).append(listener)
        self._hooks = hooks
        self._on_rejected_hooks = bool(hooks.get("on_rejected"))
        self._select_paths()

    def _emit(self, hook: str, event: Any) -> None:
        for listener in self._hooks.get(hook, ()):
            try:
                getattr(listener, hook)(event)
            except Exception:
                log.exception("breaker %r: listener %r failed in %s; ignored", self.name, listener, hook)

    def _emit_rejected(self, now: int, retry_after: float) -> None:
        self._emit("on_rejected", CallRejected(self.name, now, self._state, retry_after))
