"""A breaker shared by several real processes through a real Redis; local fallback when Redis dies."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time

import pytest

from resilience.breaker import BreakerState
from resilience.breaker.shared import RedisBreakerStore, SharedCircuitBreaker
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
