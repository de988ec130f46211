"""A breaker shared by several real processes through a real Redis; local fallback when Redis dies."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time

import pytest

from resilience.breaker import BreakerListener, BreakerState
from resilience.breaker.shared import RedisBreakerStore, SharedCircuitBreaker
from resilience.clock import FakeClock
from resilience.errors import CircuitOpenError

pytestmark = pytest.mark.timeout(90)

CTX = mp.get_context("spawn")  # no inherited sockets or threads from the test process


class Boom(Exception):
    pass


def _boom():
    raise Boom()


def _ok():
    return "ok"


def worker_fail_then_probe(url: str, name: str, failures: int, barrier, results) -> None:
    """Record `failures` failures, wait for everyone, then report whether a call is refused."""
    breaker = SharedCircuitBreaker(name, RedisBreakerStore(url), failure_threshold=6, wait_in_open=30)
    barrier.wait(20)
    for _ in range(failures):
        try:
            breaker.call(_boom)
        except (Boom, CircuitOpenError):
            pass
    barrier.wait(20)
    try:
        breaker.call(_ok)
        results.put("admitted")
    except CircuitOpenError as exc:
        results.put(f"rejected {exc.retry_after:.0f}")


def worker_half_open(url: str, name: str, barrier, results) -> None:
    """All processes try a slow trial call at once while the breaker is HALF_OPEN."""
    breaker = SharedCircuitBreaker(name, RedisBreakerStore(url), failure_threshold=1, wait_in_open=0.5,
                                   half_open_permitted_calls=2)
    barrier.wait(20)
    try:
        breaker.call(time.sleep, 0.5)
        results.put("admitted")
    except CircuitOpenError:
        results.put("rejected")


def run_workers(target, args_for, n: int) -> list[str]:
    barrier = CTX.Barrier(n)
    results = CTX.Queue()
    procs = [CTX.Process(target=target, args=(*args_for(i), barrier, results)) for i in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    return sorted(out)


def test_failures_from_three_processes_open_the_breaker_for_all(redis_server):
    # 3 processes × 2 failures = 6 consecutive failures: none alone reaches the threshold
    out = run_workers(worker_fail_then_probe, lambda i: (redis_server.url, "orders", 2), 3)
    assert out == ["rejected 30"] * 3
    store = RedisBreakerStore(redis_server.url)
    snap = store.snapshot("orders")
    assert snap["state"] == "open" and snap["failures"] == "6" and snap["times_opened"] == "1"
    local = SharedCircuitBreaker("orders", store, failure_threshold=6)
    with pytest.raises(CircuitOpenError):
        local.call(_ok)
    assert local.state is BreakerState.OPEN


def test_below_threshold_in_total_stays_closed(redis_server):
    out = run_workers(worker_fail_then_probe, lambda i: (redis_server.url, "payments", 1), 3)
    assert out == ["admitted"] * 3


def test_half_open_admits_exactly_n_across_processes(redis_server):
    store = RedisBreakerStore(redis_server.url)
    b = SharedCircuitBreaker("inventory", store, failure_threshold=1, wait_in_open=0.5, half_open_permitted_calls=2)
    with pytest.raises(Boom):
        b.call(_boom)
    assert b.state is BreakerState.OPEN
    time.sleep(0.6)
    out = run_workers(worker_half_open, lambda i: (redis_server.url, "inventory"), 4)
    assert out == ["admitted", "admitted", "rejected", "rejected"]
    assert store.snapshot("inventory")["state"] == "closed"


def test_shared_rate_window(redis_server):
    store = RedisBreakerStore(redis_server.url)
    kwargs = dict(failure_threshold=None, failure_rate_threshold=50, sliding_window_size=4, minimum_calls=4)
    a = SharedCircuitBreaker("rate", store, **kwargs)
    b = SharedCircuitBreaker("rate", store, **kwargs)
    a.call(_ok)
    with pytest.raises(Boom):
        b.call(_boom)
    a.call(_ok)
    assert a.state is BreakerState.CLOSED
    with pytest.raises(Boom):
        b.call(_boom)  # 2 of 4 = 50 %
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        a.call(_ok)


async def test_async_shared_breaker(redis_server):
    store = RedisBreakerStore(redis_server.url)
    b = SharedCircuitBreaker("async", store, failure_threshold=2)

    async def ok():
        return 1

    async def boom():
        raise Boom()

    assert await b.acall(ok) == 1
    for _ in range(2):
        with pytest.raises(Boom):
            await b.acall(boom)
    with pytest.raises(CircuitOpenError):
        await b.acall(ok)
    assert store.snapshot("async")["state"] == "open"
    await store.aclose()


def test_redis_down_falls_back_to_local_state_and_warns_once(redis_server, caplog):
    store = RedisBreakerStore(redis_server.url, timeout=0.2, reconnect_interval=0.3)
    b = SharedCircuitBreaker("fallback", store, failure_threshold=3)
    assert b.call(_ok) == "ok"
    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="resilience.breaker.shared"):
        t0 = time.monotonic()
        for _ in range(20):
            assert b.call(_ok) == "ok"
        assert time.monotonic() - t0 < 2.0
        for _ in range(3):
            with pytest.raises(Boom):
                b.call(_boom)
        assert b.state is BreakerState.OPEN  # local rules still apply
        with pytest.raises(CircuitOpenError):
            b.call(_ok)
        time.sleep(0.35)
        with pytest.raises(CircuitOpenError):
            b.call(_ok)  # retries Redis (still down), stays on local state
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1


def test_redis_comes_back(redis_server, caplog):
    store = RedisBreakerStore(redis_server.url, timeout=0.2, reconnect_interval=0.2)
    b = SharedCircuitBreaker("comeback", store, failure_threshold=3)
    redis_server.kill()
    with caplog.at_level(logging.INFO, logger="resilience.breaker.shared"):
        b.call(_ok)
        redis_server.start()
        time.sleep(0.25)
        b.call(_ok)
    assert "reachable again" in caplog.text
    assert store.snapshot("comeback")["calls"] == "1"


SLOW_SETTINGS = dict(failure_threshold=None, slow_call_rate_threshold=60, slow_call_duration_threshold=0.2,
                     sliding_window_type="time", sliding_window_size=30, minimum_calls=6, wait_in_open=30)


def worker_slow_calls(url: str, name: str, barrier, results) -> None:
    """A fast and a slow call each, read the shared window; then one more slow call each, probe."""
    breaker = SharedCircuitBreaker(name, RedisBreakerStore(url), **SLOW_SETTINGS)
    barrier.wait(20)
    breaker.call(_ok)
    breaker.call(time.sleep, 0.4)
    barrier.wait(20)
    m = breaker.metrics()
    barrier.wait(20)
    try:
        breaker.call(time.sleep, 0.4)
    except CircuitOpenError:
        pass  # only if this process was scheduled after the others' slow calls had opened it
    barrier.wait(20)
    try:
        breaker.call(_ok)
        outcome = "admitted"
    except CircuitOpenError:
        outcome = "rejected"
    results.put(f"{m.state.value} window={m.window_calls}/{m.window_slow_calls} rate={m.slow_call_rate:.0f}, "
                f"then {outcome}")


def test_slow_calls_from_three_processes_fill_one_time_window(redis_server):
    # 6 calls, 3 slow (50 % < 60 %): closed, and every process sees the same shared window;
    # 3 more slow calls: 5 of 8 = 62.5 % opens it for all (each process alone never has 6 calls)
    out = run_workers(worker_slow_calls, lambda i: (redis_server.url, "slow"), 3)
    assert out == ["closed window=6/3 rate=50, then rejected"] * 3
    snap = RedisBreakerStore(redis_server.url).snapshot("slow")
    assert snap["state"] == "open" and snap["slow_calls"] == "5" and snap["calls"] == "8"


def worker_skewed_clock_trips(url: str, name: str, skew_s: float, results) -> None:
    """A process whose wall clock is `skew_s` off opens the breaker (wait_in_open 30 s)."""
    real = time.time_ns
    time.time_ns = lambda: real() + int(skew_s * 1e9)  # this process's clock is wrong
    breaker = SharedCircuitBreaker(name, RedisBreakerStore(url), failure_threshold=1, wait_in_open=30)
    try:
        breaker.call(_boom)
    except Boom:
        pass
    results.put(breaker.state.value)


def test_open_period_uses_redis_time_not_each_process_wall_clock(redis_server):
    results = CTX.Queue()
    proc = CTX.Process(target=worker_skewed_clock_trips, args=(redis_server.url, "skew", -3600.0, results))
    proc.start()
    assert results.get(timeout=30) == "open"
    proc.join(10)
    b = SharedCircuitBreaker("skew", RedisBreakerStore(redis_server.url), failure_threshold=1, wait_in_open=30)
    with pytest.raises(CircuitOpenError) as info:
        b.call(_ok)  # with the skewed clock's open_until, the wait would have ended an hour ago
    assert 20 < info.value.retry_after <= 30
    m = b.metrics()
    assert m.state is BreakerState.OPEN and m.times_opened == 1 and 20 < m.retry_after <= 30


class PerCall(BreakerListener):
    def __init__(self) -> None:
        self.events: list = []

    def on_success(self, event):
        self.events.append(("success", event.duration_ns))

    def on_failure(self, event):
        self.events.append(("failure", type(event.error).__name__, event.duration_ns))

    def on_slow_call(self, event):
        self.events.append(("slow", event.succeeded))


async def test_shared_breaker_emits_per_call_events_and_window_metrics_from_redis(redis_server):
    clock = FakeClock()
    listener = PerCall()
    store = RedisBreakerStore(redis_server.url)
    b = SharedCircuitBreaker("events", store, clock=clock, listeners=[listener], failure_threshold=5,
                             failure_rate_threshold=90, minimum_calls=10, slow_call_duration_threshold=1.0)

    def slow_ok():
        clock.advance(2)
        return "ok"

    async def aboom():
        raise Boom()

    assert b.call(_ok) == "ok"
    assert b.call(slow_ok) == "ok"
    with pytest.raises(Boom):
        await b.acall(aboom)
    assert listener.events == [("success", 0), ("success", 2 * 10**9), ("slow", True), ("failure", "Boom", 0)]
    other = SharedCircuitBreaker("events", store, failure_threshold=5, failure_rate_threshold=90, minimum_calls=10)
    m = other.metrics()  # another breaker object made no calls: the window is the shared one
    assert (m.window_calls, m.window_failures, m.window_slow_calls) == (3, 1, 1)
    assert m.consecutive_failures == 1 and m.calls == 0
    await store.aclose()


def test_outcome_is_recorded_locally_when_redis_dies_during_the_call(redis_server):
    store = RedisBreakerStore(redis_server.url, timeout=0.2, reconnect_interval=30)
    listener = PerCall()
    b = SharedCircuitBreaker("lost", store, failure_threshold=1, listeners=[listener])

    def dies_then_fails():
        redis_server.kill()
        raise Boom()

    with pytest.raises(Boom):
        b.call(dies_then_fails)  # admitted by Redis; RECORD cannot reach it
    assert b.state is BreakerState.OPEN, "the failure counts in the local state"
    assert listener.events == [("failure", "Boom", listener.events[0][2])]
    with pytest.raises(CircuitOpenError):
        b.call(_ok)
    assert b.metrics().failures == 1
