"""Health checks without I/O: deadlines, errors, registry, periodic runner."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from resilience.errors import HealthCheckFailed
from resilience.health import (
    HealthCheck,
    HealthRegistry,
    HealthRunner,
    HealthStatus,
    HttpCheck,
    PostgresCheck,
    RedisCheck,
    run_check,
)


class FakeCheck:
    def __init__(self, name: str, *, delay: float = 0.0, error: Exception | None = None, deadline: float = 0.2,
                 ignore_cancel: bool = False) -> None:
        self.name, self.delay, self.error, self.deadline, self.ignore_cancel = name, delay, error, deadline, ignore_cancel
        self.calls = 0

    async def probe(self) -> None:
        self.calls += 1
        if self.ignore_cancel:
            try:
                await asyncio.sleep(self.delay)
            except asyncio.CancelledError:
                await asyncio.sleep(self.delay)  # a client whose cleanup blocks too
        else:
            await asyncio.sleep(self.delay)
        if self.error:
            raise self.error


async def test_healthy_and_unhealthy_results():
    ok = await run_check(FakeCheck("ok"))
    assert ok.status is HealthStatus.HEALTHY and ok.error is None and ok.latency >= 0
    bad = await run_check(FakeCheck("bad", error=ConnectionRefusedError("refused\nmore")))
    assert bad.status is HealthStatus.UNHEALTHY and bad.error == "ConnectionRefusedError: refused"


async def test_deadline_is_enforced_even_if_cleanup_blocks():
    check = FakeCheck("stuck", delay=5, deadline=0.1, ignore_cancel=True)
    t0 = time.monotonic()
    result = await run_check(check)
    elapsed = time.monotonic() - t0
    assert not result.healthy and "deadline of 0.1 s exceeded" in result.error
    assert elapsed < 1.0  # a generous bound: the check must not wait for the 5 s cleanup
    assert result.latency >= 0.1


async def test_registry_runs_all_concurrently_and_requires():
    reg = HealthRegistry([FakeCheck("a", delay=0.05), FakeCheck("b", error=OSError("down"))])
    assert reg.names == ["a", "b"] and not reg.is_healthy()
    results = await reg.run_all()
    assert results["a"].healthy and not results["b"].healthy
    assert not reg.is_healthy()
    await reg.require("a")
    with pytest.raises(HealthCheckFailed, match="OSError: down") as info:
        await reg.require("b")
    assert info.value.result.status is HealthStatus.UNHEALTHY
    reg.unregister("b")
    assert reg.is_healthy()
    with pytest.raises(ValueError, match="already registered"):
        reg.register(FakeCheck("a"))
    with pytest.raises(KeyError, match="not found in: a"):
        reg.unregister("zz")
    with pytest.raises(ValueError, match="deadline must be seconds > 0"):
        reg.register(FakeCheck("c", deadline=0))


async def test_runner_repeats_and_survives_failing_callbacks():
    check = FakeCheck("a")
    seen = []
    sleeps = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)

    def broken(results):
        raise RuntimeError("callback bug")

    runner = HealthRunner(HealthRegistry([check]), on_results=[broken, seen.append], sleep=fake_sleep)
    assert runner.interval == 30.0
    async with runner:
        while runner.rounds < 3:
            await asyncio.sleep(0.001)
    assert not runner.running
    assert len(seen) >= 3 and all(r["a"].healthy for r in seen)
    assert set(sleeps) == {30.0}
    with pytest.raises(ValueError, match="interval must be seconds > 0"):
        HealthRunner(HealthRegistry(), interval=0)


async def test_http_check_with_mock_transport():
    def handler(request):
        return httpx.Response(200 if request.url.path == "/ok" else 503)

    t = httpx.MockTransport(handler)
    assert (await run_check(HttpCheck("http://127.0.0.1:9/ok", transport=t))).healthy
    bad = await run_check(HttpCheck("http://127.0.0.1:9/down", transport=t))
    assert "HTTP 503" in bad.error


def test_builtin_checks_have_seed_deadlines_and_satisfy_protocol():
    pg = PostgresCheck("postgresql://postgres@127.0.0.1:1/postgres")
    rd = RedisCheck("redis://127.0.0.1:1/0")
    assert (pg.deadline, rd.deadline) == (1.0, 0.5)
    assert isinstance(pg, HealthCheck) and isinstance(rd, HealthCheck)
    with pytest.raises(ValueError, match="exactly one of dsn= or pool="):
        PostgresCheck()
