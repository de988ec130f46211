"""Health checks against real PostgreSQL and Redis, including paused (SIGSTOP) servers."""

from __future__ import annotations

import time

import pytest

from resilience.health import HealthRegistry, PostgresCheck, RedisCheck, run_check

pytestmark = pytest.mark.timeout(60)


async def test_postgres_check_healthy_then_paused_then_dead(pg_server):
    check = PostgresCheck(pg_server.dsn)
    ok = await run_check(check)
    assert ok.healthy, ok.error
    pg_server.pause()
    try:
        t0 = time.monotonic()
        paused = await run_check(check)
        elapsed = time.monotonic() - t0
    finally:
        pg_server.resume()
    assert not paused.healthy
    assert paused.latency >= 0.9 and elapsed < 1.5  # deadline 1 s, never a hang
    pg_server.kill()
    dead = await run_check(check)
    assert not dead.healthy and dead.latency < 1.0


async def test_redis_check_healthy_then_paused_then_dead(redis_server):
    check = RedisCheck(redis_server.url)
    ok = await run_check(check)
    assert ok.healthy, ok.error
    redis_server.pause()
    try:
        t0 = time.monotonic()
        paused = await run_check(check)
        elapsed = time.monotonic() - t0
    finally:
        redis_server.resume()
    assert not paused.healthy
    assert paused.latency >= 0.45 and elapsed < 1.0  # deadline 500 ms
    redis_server.kill()
    dead = await run_check(check)
    assert not dead.healthy and "Connect" in dead.error


async def test_registry_reports_each_dependency(pg_server, redis_server):
    reg = HealthRegistry([PostgresCheck(pg_server.dsn), RedisCheck(redis_server.url)])
    results = await reg.run_all()
    assert all(r.healthy for r in results.values())
    redis_server.pause()
    try:
        results = await reg.run_all()
    finally:
        redis_server.resume()
    assert results["postgres"].healthy and not results["redis"].healthy
    assert not reg.is_healthy()


async def test_refused_ports_are_unhealthy_fast():
    # port 1 on loopback: nothing listens, so the connect is refused at once
    for check in (PostgresCheck("postgresql://postgres@127.0.0.1:1/postgres"), RedisCheck("redis://127.0.0.1:1/0")):
        result = await run_check(check)
        assert not result.healthy and result.latency < check.deadline
