"""AutoRecovery: named recovery strategies, retried with tenacity, escalated when exhausted.

    recover("database_connection")
       │  tenacity: stop_after_attempt(n), wait=strategy.wait, sleep=injected
       ├─ attempt ok ───────────────► RecoveryOutcome(recovered=True), stats updated
       └─ all attempts failed ──► escalate (CRITICAL alert + Incident)
                                  ├─ strategy has a fallback ► RecoveryOutcome(fallback_used=True, value=…)
                                  └─ otherwise ──────────────► raise RecoveryExhausted

Built-in strategies follow the seed: ``database_connection`` (3 attempts, 5 s × attempt),
``external_service`` (5 attempts, 2 s, cached-data fallback), ``memory_exhaustion`` (1 attempt:
clear non-essential caches by pattern, collect garbage, log memory).
"""

from __future__ import annotations

import asyncio
import fnmatch
import gc
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryError, stop_after_attempt, wait_fixed, wait_incrementing
from tenacity.wait import wait_base

from resilience.clock import Clock, SystemClock
from resilience.errors import RecoveryExhausted
from resilience.incidents import IncidentManager

__all__ = [
    "AutoRecovery",
    "RecoveryOutcome",
    "RecoveryStats",
    "RecoveryStrategy",
    "database_connection",
    "external_service",
    "memory_exhaustion",
]

log = logging.getLogger(__name__)

Action = Callable[[], Awaitable[Any] | Any]


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass(frozen=True)
class RecoveryStrategy:
    """One way to recover: ``action`` is tried up to ``attempts`` times, waiting ``wait`` between.

    ``action`` raises to signal "not recovered yet". ``fallback`` (optional) supplies a degraded
    result (e.g. cached data) once every attempt failed.
    """

    name: str
    action: Action
    attempts: int = 3
    wait: wait_base = field(default_factory=lambda: wait_fixed(0))
    fallback: Action | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("RecoveryStrategy.name must be a non-empty string")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"RecoveryStrategy.attempts must be an integer >= 1, got {self.attempts!r}")


@dataclass(frozen=True, slots=True)
class RecoveryOutcome:
    strategy: str
    recovered: bool
    attempts: int
    duration: float
    fallback_used: bool = False
    value: Any = None
    error: str | None = None


@dataclass
class RecoveryStats:
    """Per-strategy record: how often recovery ran, how often it worked, how long it took."""

    runs: int = 0
    successes: int = 0
    attempts: int = 0
    durations: list[float] = field(default_factory=list)  # seconds, successful runs only

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else 0.0

    @property
    def mean_recovery_time(self) -> float:
        return sum(self.durations) / len(self.durations) if self.durations else 0.0

    @property
    def p95_recovery_time(self) -> float:
        """Nearest-rank 95th percentile of successful recovery times."""
        if not self.durations:
            return 0.0
        ordered = sorted(self.durations)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    def as_dict(self) -> dict[str, float | int]:
        return {"runs": self.runs, "successes": self.successes, "attempts": self.attempts,
                "success_rate": self.success_rate, "mean_recovery_time": self.mean_recovery_time,
                "p95_recovery_time": self.p95_recovery_time}


class AutoRecovery:
    """A registry of strategies and the loop that runs them.

    ``sleep`` is what tenacity waits with (inject ``FakeClock.asleep`` in tests); ``clock``
    measures recovery time; ``incidents`` receives the escalation.
    """

    def __init__(self, strategies: Iterable[RecoveryStrategy] = (), *, incidents: IncidentManager | None = None,
                 clock: Clock | None = None, sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        self.clock = clock or SystemClock()
        self.incidents = incidents
        self._sleep = sleep or getattr(self.clock, "asleep", None) or asyncio.sleep
        self._strategies: dict[str, RecoveryStrategy] = {}
        self._stats: dict[str, RecoveryStats] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        for strategy in strategies:
            self.register(strategy)

    def register(self, strategy: RecoveryStrategy, *, replace: bool = False) -> None:
        if strategy.name in self._strategies and not replace:
            raise ValueError(f"recovery strategy {strategy.name!r} is already registered (pass replace=True)")
        self._strategies[strategy.name] = strategy
        self._stats.setdefault(strategy.name, RecoveryStats())

    def strategy(self, name: str) -> RecoveryStrategy:
        try:
            return self._strategies[name]
        except KeyError:
            known = ", ".join(sorted(self._strategies)) or "(none)"
            raise KeyError(f"recovery strategy {name!r} not found in: {known}") from None

    @property
    def names(self) -> list[str]:
        return sorted(self._strategies)

    def stats(self, name: str) -> RecoveryStats:
        self.strategy(name)
        return self._stats[name]

    def all_stats(self) -> dict[str, dict[str, float | int]]:
        return {name: stats.as_dict() for name, stats in sorted(self._stats.items())}

    async def recover(self, name: str) -> RecoveryOutcome:
        """Run strategy `name`; one recovery per strategy at a time (concurrent callers queue)."""
        strategy = self.strategy(name)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            return await self._run(strategy)

    async def _run(self, strategy: RecoveryStrategy) -> RecoveryOutcome:
        stats = self._stats[strategy.name]
        start = self.clock.monotonic_ns()
        tried = 0
        last_error: BaseException | None = None

        def before_sleep(state) -> None:
            log.warning("recovery %r: attempt %d/%d failed (%r); retrying", strategy.name, state.attempt_number,
                        strategy.attempts, state.outcome.exception())

        retrying = AsyncRetrying(stop=stop_after_attempt(strategy.attempts), wait=strategy.wait,
                                 sleep=self._sleep, before_sleep=before_sleep, reraise=False)
        try:
            async for attempt in retrying:
                with attempt:
                    tried += 1
                    await _maybe_await(strategy.action())
        except RetryError as exc:
            last_error = exc.last_attempt.exception()
        duration = (self.clock.monotonic_ns() - start) / 1e9
        stats.runs += 1
        stats.attempts += tried
        if last_error is None:
            stats.successes += 1
            stats.durations.append(duration)
            log.info("recovery %r: recovered after %d attempt(s) in %.3f s", strategy.name, tried, duration)
            if self.incidents is not None:  # the escalated incident, if any, is over
                await self.incidents.resolve_key(f"recovery:{strategy.name}", f"recovered after {tried} attempt(s)")
            return RecoveryOutcome(strategy.name, True, tried, duration)

        log.error("recovery %r: all %d attempt(s) failed: %r", strategy.name, tried, last_error)
        if self.incidents is not None:
            await self.incidents.escalate(
                f"automatic recovery {strategy.name!r} failed",
                f"{tried} attempt(s) over {duration:.1f} s; last error: {last_error!r}",
                {"strategy": strategy.name, "attempts": tried, "duration_s": round(duration, 3),
                 "error": repr(last_error)},
                dedup_key=f"recovery:{strategy.name}",
            )
        if strategy.fallback is not None:
            value = await _maybe_await(strategy.fallback())
            return RecoveryOutcome(strategy.name, False, tried, duration, fallback_used=True, value=value,
                                   error=repr(last_error))
        raise RecoveryExhausted(strategy.name, tried, last_error) from last_error


# ------------------------------------------------------------------ built-in strategies
def database_connection(*, restart: Action, validate: Action, attempts: int = 3, wait_per_attempt: float = 5.0,
                        name: str = "database_connection") -> RecoveryStrategy:
    """Restart the pool, then validate it with test queries; waits 5 s × attempt between tries."""

    async def action() -> None:
        await _maybe_await(restart())
        await _maybe_await(validate())

    return RecoveryStrategy(name, action, attempts=attempts,
                            wait=wait_incrementing(start=wait_per_attempt, increment=wait_per_attempt),
                            description="restart the connection pool and validate it with test queries")


def external_service(*, probe: Action, cached: Action | None = None, attempts: int = 5, wait: float = 2.0,
                     name: str = "external_service") -> RecoveryStrategy:
    """Probe the service until it answers; if it never does, serve ``cached()`` data instead."""
    return RecoveryStrategy(name, probe, attempts=attempts, wait=wait_fixed(wait), fallback=cached,
                            description="retry the service, then fall back to cached data")


def memory_exhaustion(*, caches: Mapping[str, Any], patterns: Iterable[str] = ("*cache*",),
                      clear_external: Callable[[str], Awaitable[int] | int] | None = None,
                      name: str = "memory_exhaustion") -> RecoveryStrategy:
    """Clear caches whose name matches a pattern (non-essential by naming), collect garbage, log memory.

    ``caches`` maps names to objects with ``clear()`` (dicts, lru_cache'd functions via
    ``cache_clear`` also work). ``clear_external(pattern)`` can drop keys elsewhere (e.g. Redis).
    """
    pats = tuple(patterns)

    async def action() -> None:
        before = _rss_mb()
        cleared = []
        for cache_name, cache in caches.items():
            if any(fnmatch.fnmatchcase(cache_name, p) for p in pats):
                (getattr(cache, "clear", None) or cache.cache_clear)()
                cleared.append(cache_name)
        external = 0
        if clear_external is not None:
            for pattern in pats:
                external += int(await _maybe_await(clear_external(pattern)) or 0)
        collected = gc.collect()
        log.warning("memory recovery: cleared caches %s, %d external keys, gc collected %d objects; "
                    "RSS %.1f MB -> %.1f MB", cleared, external, collected, before, _rss_mb())

    return RecoveryStrategy(name, action, attempts=1,
                            description="clear non-essential caches by pattern, collect garbage, log memory")


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # psutil missing or unsupported platform: memory is then simply not logged
        return float("nan")
