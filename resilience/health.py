"""Health checks with hard deadlines, a registry, and a periodic runner.

A check is an async ``probe()`` that raises when the dependency is unhealthy. The runner,
not the check, enforces the deadline: the probe runs in its own task and, past the
deadline, is cancelled *and abandoned* — so a server that accepts TCP but never answers
(SIGSTOP, a paused container) yields an UNHEALTHY result on time instead of a hang, even
if the client library's cleanup itself blocks. Clients are also bounded on their own
(socket timeouts, no retries; docs/recipes.md, section 6), so abandoned tasks finish soon after.

    HealthRegistry.run_all() ──gather──► run_check(check) ─► HealthResult(status, latency, error)
    HealthRunner: every `interval` s, run_all() → on_result callbacks, last results kept
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

import httpx

from resilience.clock import Clock, SystemClock
from resilience.errors import HealthCheckFailed

__all__ = [
    "HealthCheck",
    "HealthRegistry",
    "HealthResult",
    "HealthRunner",
    "HealthStatus",
    "HttpCheck",
    "PostgresCheck",
    "RedisCheck",
    "run_check",
]

log = logging.getLogger(__name__)


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class HealthResult:
    """One check's outcome. ``latency`` is seconds until it answered or the deadline passed."""

    name: str
    status: HealthStatus
    latency: float
    error: str | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def healthy(self) -> bool:
        return self.status is HealthStatus.HEALTHY


@runtime_checkable
class HealthCheck(Protocol):
    """``name``, a ``deadline`` in seconds, and ``probe()`` which raises if unhealthy."""

    name: str
    deadline: float

    async def probe(self) -> None: ...


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _reap(task: asyncio.Task) -> None:
    """Retrieve an abandoned probe's outcome so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()


async def run_check(check: HealthCheck, clock: Clock | None = None) -> HealthResult:
    """Run one probe under its deadline; never raises, never waits past the deadline."""
    clock = clock or SystemClock()
    start = clock.monotonic_ns()
    task = asyncio.ensure_future(check.probe())
    try:
        done, _ = await asyncio.wait({task}, timeout=check.deadline)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_reap)
        raise
    latency = (clock.monotonic_ns() - start) / 1e9
    if not done:
        task.cancel()
        task.add_done_callback(_reap)
        return HealthResult(check.name, HealthStatus.UNHEALTHY, latency,
                            f"deadline of {check.deadline:g} s exceeded")
    exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
    if exc is not None:
        return HealthResult(check.name, HealthStatus.UNHEALTHY, latency, _describe(exc))
    return HealthResult(check.name, HealthStatus.HEALTHY, latency)


class PostgresCheck:
    """``SELECT 1`` on a fresh asyncpg connection (or from ``pool`` if given); deadline 1 s."""

    def __init__(self, dsn: str | None = None, *, pool=None, name: str = "postgres", deadline: float = 1.0,
                 query: str = "SELECT 1") -> None:
        if (dsn is None) == (pool is None):
            raise ValueError("PostgresCheck: pass exactly one of dsn= or pool=")
        import asyncpg  # here, not in probe(): a first import would eat into the deadline

        self._connect = asyncpg.connect
        self.dsn, self.pool, self.name, self.deadline, self.query = dsn, pool, name, deadline, query

    async def probe(self) -> None:
        if self.pool is not None:
            async with self.pool.acquire(timeout=self.deadline) as conn:
                await conn.fetchval(self.query, timeout=self.deadline)
            return
        conn = await self._connect(self.dsn, timeout=self.deadline, command_timeout=self.deadline)
        try:
            await conn.fetchval(self.query)
        finally:
            with contextlib.suppress(Exception):
                conn.terminate()  # no goodbye round trip to a server that may be stuck


class RedisCheck:
    """PING with socket timeouts and no retries (redis-py retries hide faults); deadline 500 ms."""

    def __init__(self, url: str, *, name: str = "redis", deadline: float = 0.5) -> None:
        from redis.asyncio import Redis  # imported here so the first probe is not slowed by it
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._client = lambda: Redis.from_url(
            url, socket_timeout=deadline, socket_connect_timeout=deadline, retry=Retry(NoBackoff(), 0),
            retry_on_error=[], health_check_interval=0)
        self.url, self.name, self.deadline = url, name, deadline

    async def probe(self) -> None:
        client = self._client()
        try:
            if not await client.ping():
                raise ConnectionError("PING did not return PONG")
        finally:
            with contextlib.suppress(Exception):
                await client.aclose(close_connection_pool=True)


class HttpCheck:
    """GET ``url``; healthy when the status is in ``expect`` (default 2xx/3xx)."""

    def __init__(self, url: str, *, name: str = "http", deadline: float = 2.0,
                 expect: Iterable[int] = range(200, 400), transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url, self.name, self.deadline = url, name, deadline
        self.expect = frozenset(expect)
        self._transport = transport

    async def probe(self) -> None:
        async with httpx.AsyncClient(timeout=self.deadline, transport=self._transport) as client:
            response = await client.get(self.url)
        if response.status_code not in self.expect:
            raise ConnectionError(f"GET {self.url} returned HTTP {response.status_code}")


class HealthRegistry:
    """Named checks; ``run_all`` runs them concurrently and keeps the latest results."""

    def __init__(self, checks: Iterable[HealthCheck] = (), *, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._checks: dict[str, HealthCheck] = {}
        self.last: dict[str, HealthResult] = {}
        for check in checks:
            self.register(check)

    def register(self, check: HealthCheck) -> None:
        if check.name in self._checks:
            raise ValueError(f"health check {check.name!r} is already registered; "
                             f"names: {', '.join(sorted(self._checks))}")
        if not check.deadline > 0:
            raise ValueError(f"health check {check.name!r}: deadline must be seconds > 0, got {check.deadline!r}")
        self._checks[check.name] = check

    def unregister(self, name: str) -> None:
        if name not in self._checks:
            raise KeyError(f"health check {name!r} not found in: {', '.join(sorted(self._checks)) or '(none)'}")
        del self._checks[name]
        self.last.pop(name, None)

    @property
    def names(self) -> list[str]:
        return sorted(self._checks)

    async def run(self, name: str) -> HealthResult:
        result = await run_check(self._checks[name], self.clock)
        self.last[name] = result
        return result

    async def run_all(self) -> dict[str, HealthResult]:
        names = list(self._checks)
        results = await asyncio.gather(*(run_check(self._checks[n], self.clock) for n in names))
        out = dict(zip(names, results, strict=True))
        self.last.update(out)
        return out

    def is_healthy(self) -> bool:
        """True when every registered check has run and its last result is healthy."""
        return all(n in self.last and self.last[n].healthy for n in self._checks)

    async def require(self, name: str) -> HealthResult:
        """Run one check and raise HealthCheckFailed if it is unhealthy."""
        result = await self.run(name)
        if not result.healthy:
            raise HealthCheckFailed(name, result.error, result)
        return result


ResultCallback = Callable[[dict[str, HealthResult]], Awaitable[None] | None]


class HealthRunner:
    """Runs the registry every ``interval`` seconds (default 30) in a background task."""

    def __init__(self, registry: HealthRegistry, *, interval: float = 30.0,
                 on_results: Iterable[ResultCallback] = (),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not interval > 0:
            raise ValueError(f"HealthRunner.interval must be seconds > 0, got {interval!r}")
        self.registry = registry
        self.interval = interval
        self.callbacks = list(on_results)
        self._sleep = sleep
        self._task: asyncio.Task | None = None
        self.rounds = 0

    async def run_once(self) -> dict[str, HealthResult]:
        results = await self.registry.run_all()
        self.rounds += 1
        for callback in self.callbacks:
            try:
                maybe = callback(results)
                if asyncio.iscoroutine(maybe):
                    await maybe
            except Exception:
                log.exception("health runner: callback %r failed; ignored", callback)
        return results

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await self._sleep(self.interval)

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            raise RuntimeError("HealthRunner is already running")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="health-runner")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> HealthRunner:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
