"""Steady-state probes: sample a service every Δ on the run's clock, before, during and after a fault.

Samples are scheduled at fixed rate (t0 + kΔ), each in its own task with its own deadline, so a
probe that hangs on a dead dependency never delays the next sample: detection is late by at
most Δ, which is what the accuracy in docs/metrics.md (MTTR within ±Δ) relies on.

    ProbeRunner (thread with its own event loop)
        every Δ ─► task: HttpProbe.check() ─► Sample(t_ns=send time, ok, latency, good) ─► Timeline

`HealthProbe` runs one of the resilience core's own health checks (resilience/health.py: a fresh
PostgreSQL connection + SELECT 1, a Redis PING) in the same runner, as samples named
`health.<kind>`, so the dependencies themselves are looked at directly, not only through the app.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from harness.measure import HEALTH_PREFIX
from harness.timeline import Sample, Timeline

CIRCUIT_OPEN = " (circuit open)"


@dataclass(frozen=True)
class HttpProbe:
    """GET `url`; ok when the status is `expect_status`; good when also faster than the threshold."""

    name: str
    url: str
    timeout_s: float = 1.0
    latency_threshold_s: float = 0.5
    expect_status: int = 200

    async def sample(self, client: httpx.AsyncClient) -> Sample:
        t0 = time.monotonic_ns()
        error = None
        try:
            response = await client.get(self.url, timeout=self.timeout_s)
            ok = response.status_code == self.expect_status
            if not ok:
                error = f"HTTP {response.status_code}"
                if response.headers.get("X-Circuit") == "open":
                    error += CIRCUIT_OPEN  # failed fast: measure.py reads these as fail-fast latency
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}".rstrip(": ")
        latency = time.monotonic_ns() - t0
        good = ok and latency <= self.latency_threshold_s * 1e9
        if ok and not good:
            error = f"slow: {latency / 1e6:.0f} ms > {self.latency_threshold_s * 1000:.0f} ms"
        return Sample(t_ns=t0, probe=self.name, ok=ok, latency_ns=latency, error=error, good=good)


class Probe(Protocol):
    """What ProbeRunner samples: a name, a timeout bounding one sample, and `sample()`."""

    name: str
    timeout_s: float

    async def sample(self, client: httpx.AsyncClient) -> Sample: ...


@dataclass(frozen=True)
class HealthProbe:
    """A resilience.health check (PostgresCheck, RedisCheck, …) as a probe: sample `health.<name>`.

    The check's own deadline bounds it (run_check never waits past it); ok = healthy; good = healthy
    within `latency_threshold_s` (the target), so the report's probe chart marks slow checks too.
    """

    check: Any  # resilience.health.HealthCheck
    latency_threshold_s: float

    @property
    def name(self) -> str:
        return HEALTH_PREFIX + self.check.name

    @property
    def timeout_s(self) -> float:
        return float(self.check.deadline)

    async def sample(self, client: httpx.AsyncClient | None = None) -> Sample:
        from resilience.health import run_check

        t0 = time.monotonic_ns()
        result = await run_check(self.check)
        latency = round(result.latency * 1e9)
        good = result.healthy and latency <= self.latency_threshold_s * 1e9
        error = result.error
        if result.healthy and not good:
            error = f"slow: {latency / 1e6:.0f} ms > {self.latency_threshold_s * 1000:.0f} ms"
        return Sample(t_ns=t0, probe=self.name, ok=result.healthy, latency_ns=latency, error=error, good=good)


class ProbeRunner:
    """Runs probes at a fixed interval in a background thread until stopped; a context manager."""

    def __init__(self, probes: list[Probe], timeline: Timeline, interval_s: float = 0.1) -> None:
        if interval_s <= 0:
            raise ValueError(f"probe interval must be > 0 s, got {interval_s}")
        self.probes = probes
        self.timeline = timeline
        self.interval_ns = int(interval_s * 1e9)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> ProbeRunner:
        self._thread = threading.Thread(target=self._thread_main, name="chaosdrill-probes", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(p.timeout_s for p in self.probes) + 5)
        if self._error is not None:
            raise self._error

    def __enter__(self) -> ProbeRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # surfaced by stop(); a dead prober must not pass silently
            self._error = exc

    async def _loop(self) -> None:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=10)
        async with httpx.AsyncClient(limits=limits) as client:
            pending: set[asyncio.Task] = set()
            t0 = time.monotonic_ns()
            k = 0
            while not self._stop.is_set():
                for probe in self.probes:
                    task = asyncio.create_task(self._one(probe, client))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                k += 1
                delay = (t0 + k * self.interval_ns - time.monotonic_ns()) / 1e9
                if delay > 0:
                    await asyncio.sleep(delay)
                else:  # fell behind (a stalled host): skip missed slots rather than burst
                    k = (time.monotonic_ns() - t0) // self.interval_ns + 1
            if pending:
                await asyncio.wait(pending, timeout=max(p.timeout_s for p in self.probes) + 1)

    async def _one(self, probe: Probe, client: httpx.AsyncClient) -> None:
        self.timeline.add_sample(await probe.sample(client))
