"""CircuitBreaker behaviour, driven by a FakeClock (no sleeping, no I/O)."""

from __future__ import annotations

import asyncio
import logging
import math
import pickle
from datetime import timedelta

import pytest

from resilience.breaker import (
    BreakerConfig,
    BreakerListener,
    BreakerState,
    CircuitBreaker,
)
from resilience.clock import FakeClock
from resilience.errors import CircuitOpenError, ResilienceError


class Boom(Exception):
    pass


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom("down")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fail(b: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            b.call(boom)


class Recorder(BreakerListener):
    def __init__(self) -> None:
        self.events: list = []

    def on_state_change(self, event):
        self.events.append(("state", event.old, event.new))

    def on_rejected(self, event):
        self.events.append(("rejected", event.retry_after))

    def on_success(self, event):
        self.events.append(("success", event.duration_ns))

    def on_failure(self, event):
        self.events.append(("failure", type(event.error).__name__))

    def on_slow_call(self, event):
        self.events.append(("slow", event.succeeded))


# ---------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be an integer >= 1"),
        ({"failure_threshold": -3}, "failure_threshold must be an integer >= 1"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold must be a percentage in (0, 100]"),
        ({"failure_rate_threshold": 101}, "failure_rate_threshold must be a percentage in (0, 100]"),
        ({"slow_call_rate_threshold": -1, "slow_call_duration_threshold": 1},
         "slow_call_rate_threshold must be a percentage in (0, 100]"),
        ({"sliding_window_size": 5, "minimum_calls": 10},
         "sliding_window_size must be an integer >= minimum_calls (10)"),
        ({"minimum_calls": 0}, "minimum_calls must be an integer >= 1"),
        ({"wait_in_open": 0}, "wait_in_open must be seconds > 0"),
        ({"wait_in_open": timedelta(seconds=-1)}, "wait_in_open must be seconds > 0"),
        ({"half_open_permitted_calls": 0}, "half_open_permitted_calls must be an integer >= 1"),
        ({"sliding_window_type": "sliding"}, "sliding_window_type must be one of: count, time"),
        ({"slow_call_rate_threshold": 50}, "slow_call_duration_threshold must be set"),
        ({"record_exceptions": (ValueError, int)}, "record_exceptions must be a tuple of exception classes"),
        ({"failure_threshold": None}, "set at least one of"),
        ({"wait_in_open": math.inf}, "wait_in_open must be seconds > 0 (finite) or a timedelta, got inf"),
        ({"wait_in_open": math.nan}, "wait_in_open must be seconds > 0 (finite) or a timedelta, got nan"),
        ({"slow_call_duration_threshold": math.inf},
         "slow_call_duration_threshold must be seconds > 0 (finite) or a timedelta, got inf"),
        ({"slow_call_duration_threshold": -math.inf}, "slow_call_duration_threshold must be seconds > 0"),
        ({"slow_call_rate_threshold": 50, "slow_call_duration_threshold": math.nan},
         "slow_call_duration_threshold must be seconds > 0 (finite)"),
        ({"failure_rate_threshold": math.nan}, "failure_rate_threshold must be a percentage in (0, 100]"),
        ({"failure_rate_threshold": 50, "sliding_window_type": "time", "sliding_window_size": 3601},
         "sliding_window_size must be an integer in [1, 3600] (seconds) for a time window, got 3601"),
    ],
)
def test_invalid_config_names_field_and_range(kwargs, message):
    with pytest.raises(ValueError, match=None) as info:
        BreakerConfig(**kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_config_is_frozen_and_rejects_unknown_names():
    cfg = BreakerConfig()
    with pytest.raises(AttributeError):
        cfg.failure_threshold = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        BreakerConfig(fail_max=5)  # type: ignore[call-arg]
    assert cfg.failure_threshold == 5 and cfg.wait_in_open == 60.0


def test_time_window_may_be_smaller_than_minimum_calls():
    BreakerConfig(sliding_window_type="time", sliding_window_size=5, minimum_calls=100, failure_rate_threshold=50)


def test_largest_time_window_and_long_count_window_are_accepted():
    BreakerConfig(sliding_window_type="time", sliding_window_size=3600, failure_rate_threshold=50)
    BreakerConfig(sliding_window_size=10_000, failure_rate_threshold=50)  # the bound is for time buckets only


def test_config_and_settings_are_exclusive():
    with pytest.raises(TypeError):
        CircuitBreaker("x", BreakerConfig(), failure_threshold=3)


# ---------------------------------------------------------------- trips
def test_opens_after_consecutive_failures_and_rejects(clock):
    b = CircuitBreaker("db", clock=clock)
    fail(b, 4)
    assert b.state is BreakerState.CLOSED
    assert b.call(ok) == "ok"
    fail(b, 4)
    assert b.state is BreakerState.CLOSED  # the success broke the run
    fail(b, 1)
    assert b.state is BreakerState.OPEN
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.name == "db"
    assert info.value.retry_after == pytest.approx(50.0)
    assert isinstance(info.value, ResilienceError)
    assert "retry after 50.000 s" in str(info.value)


def test_rejection_error_pickles_as_public_class(clock):
    b = CircuitBreaker("db", clock=clock, failure_threshold=1)
    fail(b)
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is CircuitOpenError
    assert (copy.name, copy.retry_after) == ("db", pytest.approx(60.0))
    assert type(info.value).__name__ == "CircuitOpenError"


def test_failure_rate_over_count_window(clock):
    b = CircuitBreaker("r", clock=clock, failure_threshold=None, failure_rate_threshold=50,
                       sliding_window_size=10, minimum_calls=4)
    fail(b, 1)
    b.call(ok)
    fail(b, 1)
    assert b.state is BreakerState.CLOSED  # only 3 calls, below minimum_calls
    b.call(ok)  # 4th call: 2/4 = 50 % -> opens on a success
    assert b.state is BreakerState.OPEN


def test_count_window_forgets_old_failures(clock):
    b = CircuitBreaker("r", clock=clock, failure_threshold=None, failure_rate_threshold=50,
                       sliding_window_size=4, minimum_calls=4)
    fail(b, 1)
    for _ in range(3):
        b.call(ok)
    assert b.metrics().window_failures == 1
    b.call(ok)  # the failure slides out
    m = b.metrics()
    assert (m.window_calls, m.window_failures) == (4, 0)
    fail(b, 1)
    b.call(ok)
    fail(b, 1)  # 2 of the last 4
    assert b.state is BreakerState.OPEN


def test_time_window_expires(clock):
    b = CircuitBreaker("t", clock=clock, failure_threshold=None, failure_rate_threshold=60,
                       sliding_window_type="time", sliding_window_size=10, minimum_calls=5)
    fail(b, 2)
    clock.advance(3)
    for _ in range(3):
        b.call(ok)
    assert b.metrics().window_calls == 5
    clock.advance(7.5)  # the two failures are now older than 10 s
    m = b.metrics()
    assert (m.window_calls, m.window_failures) == (3, 0)
    fail(b, 2)
    assert b.state is BreakerState.CLOSED  # 2/5 = 40 %
    fail(b, 1)  # 3/6 = 50 %
    assert b.state is BreakerState.CLOSED
    fail(b, 1)  # 4/7 = 57 %
    fail(b, 1)  # 5/8 = 62.5 %
    assert b.state is BreakerState.OPEN


def test_time_window_forgets_everything_after_a_long_gap(clock):
    b = CircuitBreaker("t", clock=clock, failure_threshold=None, failure_rate_threshold=50,
                       sliding_window_type="time", sliding_window_size=5, minimum_calls=2)
    fail(b, 1)
    clock.advance(100)
    assert b.metrics().window_calls == 0
    b.call(ok)
    b.call(ok)
    fail(b, 1)  # 1/3
    assert b.state is BreakerState.CLOSED


class SlowClockCall:
    """A callable that lets `seconds` of fake time pass while it runs."""

    def __init__(self, clock: FakeClock, seconds: float, exc: BaseException | None = None) -> None:
        self.clock, self.seconds, self.exc = clock, seconds, exc

    def __call__(self):
        self.clock.advance(self.seconds)
        if self.exc:
            raise self.exc
        return "slow"


def test_slow_call_rate_opens(clock):
    rec = Recorder()
    b = CircuitBreaker("s", clock=clock, failure_threshold=None, slow_call_rate_threshold=50,
                       slow_call_duration_threshold=2, sliding_window_size=4, minimum_calls=4,
                       listeners=[rec])
    slow = SlowClockCall(clock, 2.5)
    b.call(ok)
    b.call(slow)
    b.call(ok)
    assert b.state is BreakerState.CLOSED
    assert b.call(slow) == "slow"
    assert b.state is BreakerState.OPEN
    m = b.metrics()
    assert m.slow_calls == 2 and m.successes == 4 and m.failures == 0
    assert ("slow", True) in rec.events


def test_slow_call_without_listeners_on_fast_path(clock):
    b = CircuitBreaker("s", clock=clock, failure_threshold=None, slow_call_rate_threshold=100,
                       slow_call_duration_threshold=timedelta(milliseconds=100), sliding_window_size=2,
                       minimum_calls=2)
    b.call(SlowClockCall(clock, 0.1))
    b.call(SlowClockCall(clock, 0.2))
    assert b.state is BreakerState.OPEN


# ---------------------------------------------------------------- open / half-open
def test_half_open_admits_exactly_n(clock):
    b = CircuitBreaker("h", clock=clock, failure_threshold=1, wait_in_open=5, half_open_permitted_calls=3)
    fail(b)
    clock.advance(5)
    entered = []
    # hold three trial calls open with the context manager: a fourth is refused
    cms = [b.__enter__() for _ in range(3)]
    entered.extend(cms)
    assert b.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.retry_after == 0.0
    for _ in range(3):
        b.__exit__(None, None, None)
    assert b.state is BreakerState.CLOSED


def test_half_open_failure_reopens_with_backoff(clock):
    waits = []

    def backoff(attempt: int) -> float:
        waits.append(attempt)
        return 10.0 * attempt

    b = CircuitBreaker("h", clock=clock, failure_threshold=2, wait_in_open_backoff=backoff)
    fail(b, 2)
    assert b.retry_after() == pytest.approx(10)
    clock.advance(10)
    fail(b)  # trial fails
    assert b.state is BreakerState.OPEN
    assert b.retry_after() == pytest.approx(20)
    clock.advance(20)
    assert b.call(ok) == "ok"
    assert b.state is BreakerState.CLOSED
    fail(b, 2)
    assert b.retry_after() == pytest.approx(10)  # attempts reset after closing
    assert waits == [1, 2, 1]


def test_half_open_with_rate_decides_after_all_trials(clock):
    b = CircuitBreaker("h", clock=clock, failure_threshold=None, failure_rate_threshold=50,
                       sliding_window_size=2, minimum_calls=2, half_open_permitted_calls=4, wait_in_open=1)
    fail(b, 2)
    clock.advance(1)
    fail(b)
    b.call(ok)
    b.call(ok)
    assert b.state is BreakerState.HALF_OPEN
    b.call(ok)  # 1/4 failed < 50 %
    assert b.state is BreakerState.CLOSED


def test_ignored_exception_returns_the_permit(clock):
    b = CircuitBreaker("h", clock=clock, failure_threshold=1, ignore_exceptions=(KeyError,), wait_in_open=1)
    fail(b)
    clock.advance(1)
    with pytest.raises(KeyError):
        b.call(lambda: {}["x"])
    assert b.state is BreakerState.HALF_OPEN
    b.call(ok)
    assert b.state is BreakerState.CLOSED
    assert b.metrics().ignored == 1


def test_record_predicates(clock):
    b = CircuitBreaker("p", clock=clock, failure_threshold=2,
                       record_exception=lambda e: isinstance(e, Boom) and "down" in str(e),
                       ignore_exception=lambda e: isinstance(e, Boom) and "skip" in str(e))

    def soft():
        raise Boom("soft")

    def skip():
        raise Boom("skip")

    for fn in (soft, skip, soft, skip):
        with pytest.raises(Boom):
            b.call(fn)
    m = b.metrics()
    assert (m.failures, m.successes, m.ignored) == (0, 2, 2)
    fail(b, 2)
    assert b.state is BreakerState.OPEN


def test_not_recorded_exception_counts_as_success(clock):
    b = CircuitBreaker("p", clock=clock, failure_threshold=2, record_exceptions=(OSError,))
    fail(b, 5)
    assert b.state is BreakerState.CLOSED
    assert b.metrics().successes == 5


def test_base_exceptions_are_ignored(clock):
    b = CircuitBreaker("p", clock=clock, failure_threshold=1)
    with pytest.raises(KeyboardInterrupt):
        b.call(lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert b.state is BreakerState.CLOSED


# ---------------------------------------------------------------- operator states
def test_forced_open_and_disabled(clock):
    b = CircuitBreaker("o", clock=clock, failure_threshold=1)
    b.transition_to_forced_open()
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert math.isinf(info.value.retry_after)
    clock.advance(10_000)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    b.transition_to_disabled()
    fail(b, 10)
    assert b.state is BreakerState.DISABLED
    assert b.call(ok) == "ok"
    b.reset()
    assert b.state is BreakerState.CLOSED
    fail(b)
    assert b.state is BreakerState.OPEN


def test_illegal_transition_is_refused(clock):
    from resilience.breaker import IllegalTransition

    b = CircuitBreaker("o", clock=clock)
    with pytest.raises(IllegalTransition):
        b.transition_to_half_open()


# ---------------------------------------------------------------- listeners & metrics
def test_listener_sees_events_and_failing_listener_is_logged(clock, caplog):
    class Broken(BreakerListener):
        def on_state_change(self, event):
            raise RuntimeError("listener bug")

        def on_rejected(self, event):
            raise RuntimeError("listener bug")

    rec = Recorder()
    b = CircuitBreaker("l", clock=clock, failure_threshold=2, listeners=[Broken(), rec])
    with caplog.at_level(logging.ERROR, logger="resilience.breaker.breaker"):
        b.call(ok)
        fail(b, 2)
        with pytest.raises(CircuitOpenError):
            b.call(ok)
    assert rec.events[0] == ("success", 0)
    assert ("failure", "Boom") in rec.events
    assert ("state", BreakerState.CLOSED, BreakerState.OPEN) in rec.events
    assert rec.events[-1] == ("rejected", pytest.approx(60.0))
    assert "listener bug" in caplog.text or "failed in on_state_change" in caplog.text


def test_listener_can_be_removed(clock):
    rec = Recorder()
    b = CircuitBreaker("l", clock=clock, listeners=[rec])
    b.remove_listener(rec)
    b.call(ok)
    assert rec.events == [] and b.listeners == ()


def test_metrics_snapshot(clock):
    b = CircuitBreaker("m", clock=clock, failure_threshold=3)
    b.call(ok)
    fail(b, 2)
    m = b.metrics()
    assert (m.calls, m.successes, m.failures, m.consecutive_failures) == (3, 1, 2, 2)
    assert (m.state, m.state_code) == (BreakerState.CLOSED, 0)
    fail(b)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    m = b.metrics()
    assert (m.state_code, m.rejected, m.times_opened, m.failures) == (1, 1, 1, 3)
    assert m.retry_after == pytest.approx(60.0)
    assert BreakerState.HALF_OPEN.code == 2 and BreakerState.FORCED_OPEN.code == 4


# ---------------------------------------------------------------- sync/async forms
def test_decorator_and_context_manager(clock):
    b = CircuitBreaker("d", clock=clock, failure_threshold=2)

    @b
    def add(x, y=1):
        return x + y

    assert add(1, y=2) == 3
    assert add.breaker is b and add.__name__ == "add"
    with pytest.raises(Boom), b:
        raise Boom()
    with pytest.raises(Boom), b:
        raise Boom()
    with pytest.raises(CircuitOpenError), b:
        pass


async def test_async_forms(clock):
    b = CircuitBreaker("a", clock=clock, failure_threshold=2, wait_in_open=1)

    async def fetch(x):
        await asyncio.sleep(0)
        return x

    async def broken():
        raise Boom()

    assert await b.acall(fetch, 5) == 5

    @b
    async def decorated(x):
        return await fetch(x)

    assert await decorated(7) == 7
    async with b:
        await fetch(1)
    with pytest.raises(Boom):
        await b.acall(broken)
    with pytest.raises(Boom):
        async with b:
            await broken()
    with pytest.raises(CircuitOpenError):
        await decorated(1)
    clock.advance(1)
    assert await b.acall(fetch, 3) == 3
    assert b.state is BreakerState.CLOSED


async def test_async_context_is_per_task(clock):
    b = CircuitBreaker("a", clock=clock, failure_threshold=1, slow_call_duration_threshold=1,
                       slow_call_rate_threshold=100, sliding_window_size=1, minimum_calls=1)
    gate = asyncio.Event()

    async def slow_task():
        async with b:
            await gate.wait()

    async def fast_task():
        async with b:
            await asyncio.sleep(0)

    t1 = asyncio.create_task(slow_task())
    await asyncio.sleep(0)
    await fast_task()  # finishes while the slow one is still inside
    assert b.state is BreakerState.CLOSED
    clock.advance(2)
    gate.set()
    await t1
    assert b.state is BreakerState.OPEN


def test_async_cancellation_is_not_a_failure(clock):
    b = CircuitBreaker("a", clock=clock, failure_threshold=1)

    async def main():
        task = asyncio.create_task(b.acall(asyncio.sleep, 10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert b.state is BreakerState.CLOSED


# ---------------------------------------------------------------- threads
def test_half_open_admits_exactly_n_under_thread_contention(clock):
    import threading

    b = CircuitBreaker("t", clock=clock, failure_threshold=1, wait_in_open=1, half_open_permitted_calls=3)
    fail(b)
    clock.advance(1)
    release = threading.Event()
    admitted, rejected = [], []
    start = threading.Barrier(12)

    def trial():
        start.wait()
        try:
            b.call(release.wait, 5)
            admitted.append(1)
        except CircuitOpenError:
            rejected.append(1)

    threads = [threading.Thread(target=trial) for _ in range(12)]
    for t in threads:
        t.start()
    while len(rejected) < 9:
        if not any(t.is_alive() for t in threads):
            break
        threading.Event().wait(0.001)
    release.set()
    for t in threads:
        t.join(5)
    assert (len(admitted), len(rejected)) == (3, 9)
    assert b.state is BreakerState.CLOSED


def test_failures_from_many_threads_are_all_counted(clock):
    import threading

    b = CircuitBreaker("t", clock=clock, failure_threshold=None, failure_rate_threshold=100,
                       sliding_window_size=1000, minimum_calls=1000)

    def hammer():
        for _ in range(100):
            with pytest.raises(Boom):
                b.call(boom)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m = b.metrics()
    assert (m.failures, m.window_failures, m.window_calls) == (800, 800, 800)


# ---------------------------------------------------------------- fast path with listeners
class FailureAndSlow(BreakerListener):
    """What the app's event log listens to: failures, slow calls, state changes — no successes."""

    def __init__(self) -> None:
        self.events: list = []

    def on_state_change(self, event):
        self.events.append(("state", event.new))

    def on_failure(self, event):
        self.events.append(("failure", event.duration_ns))

    def on_slow_call(self, event):
        self.events.append(("slow", event.succeeded, event.duration_ns))


def _on_fast_path(b: CircuitBreaker) -> bool:
    return "_make_closed_" in b.call.__qualname__ and "_make_closed_" in b.acall.__qualname__


@pytest.mark.parametrize("timed", [False, True])
async def test_failure_listener_keeps_the_lock_free_fast_path_and_gets_its_events(clock, timed):
    listener = FailureAndSlow()
    extra = {"slow_call_duration_threshold": 1.0} if timed else {}
    b = CircuitBreaker("fp", clock=clock, failure_threshold=2, listeners=[listener], **extra)
    assert _on_fast_path(b)

    def slow_boom():
        clock.advance(2)
        raise Boom()

    def slow_ok():
        clock.advance(1.5)
        return "ok"

    assert b.call(ok) == "ok"
    with pytest.raises(Boom):
        b.call(slow_boom)
    if timed:
        assert b.call(slow_ok) == "ok"
    assert _on_fast_path(b)
    with pytest.raises(Boom):
        b.call(slow_boom)
    if not timed:
        assert b.state is BreakerState.OPEN
    else:
        with pytest.raises(Boom):
            await b.acall(_aboom)
        assert b.state is BreakerState.OPEN
    f2, opened = ("failure", 2 * 10**9), ("state", BreakerState.OPEN)  # a transition is emitted first
    if timed:
        expected = [f2, ("slow", False, 2 * 10**9), ("slow", True, 1.5 * 10**9), f2, ("slow", False, 2 * 10**9),
                    opened, ("failure", 0)]
    else:
        expected = [f2, opened, f2]
    assert listener.events == expected
    assert b.metrics().failures == (3 if timed else 2)


async def _aboom():
    raise Boom()


def test_success_listener_still_moves_closed_calls_to_the_guarded_path(clock):
    rec = Recorder()
    b = CircuitBreaker("g", clock=clock, listeners=[rec])
    assert not _on_fast_path(b)
    b.call(ok)
    assert rec.events == [("success", 0)]
    b.remove_listener(rec)
    assert _on_fast_path(b)


def test_time_window_fast_path_tells_slow_calls_from_bucket_crossings(clock):
    b = CircuitBreaker("tw", clock=clock, failure_threshold=None, slow_call_rate_threshold=90,
                       slow_call_duration_threshold=1.0, sliding_window_type="time", sliding_window_size=10,
                       minimum_calls=100)

    def takes(seconds):
        def fn():
            clock.advance(seconds)
            return "ok"
        return fn

    b.call(ok)  # first call rolls the fresh window: closures now hold this bucket's end
    assert "_make_closed_bucketed" in b.call.__qualname__ and b._fast_bucket_end == b._window.bucket_end
    clock.advance((b._window.bucket_end - clock.monotonic_ns()) / 1e9 - 0.3)
    b.call(takes(0.9))  # crosses into the next bucket but lasted 0.9 s: not slow
    assert b._fast_bucket_end == b._window.bucket_end, "rebuilt for the new bucket"
    b.call(takes(1.5))  # slow
    b.call(ok)
    m = b.metrics()
    assert (m.window_calls, m.window_slow_calls, m.slow_calls) == (4, 1, 1)
