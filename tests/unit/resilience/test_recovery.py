"""AutoRecovery with a FakeClock: backoff, escalation, fallback, stats, built-in strategies."""

from __future__ import annotations

import pytest
from tenacity import wait_fixed

from resilience.clock import FakeClock
from resilience.errors import RecoveryExhausted
from resilience.incidents import IncidentManager, Severity
from resilience.recovery import (
    AutoRecovery,
    RecoveryStrategy,
    database_connection,
    external_service,
    memory_exhaustion,
)


class ListSink:
    def __init__(self) -> None:
        self.items = []

    async def send(self, item) -> None:
        self.items.append(item)


class Flaky:
    """Fails `failures` times, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"attempt {self.calls} failed")


@pytest.fixture
def clock():
    return FakeClock()


async def test_database_connection_backs_off_five_seconds_times_attempt(clock):
    restart, validate = Flaky(2), Flaky(0)
    rec = AutoRecovery([database_connection(restart=restart, validate=validate)], clock=clock)
    outcome = await rec.recover("database_connection")
    assert outcome.recovered and outcome.attempts == 3
    assert clock.sleeps == [5.0, 10.0]
    assert outcome.duration == pytest.approx(15.0)
    assert validate.calls == 1
    stats = rec.stats("database_connection")
    assert (stats.runs, stats.successes, stats.attempts, stats.success_rate) == (1, 1, 3, 1.0)


async def test_exhausted_recovery_escalates_and_raises(clock):
    sink = ListSink()
    rec = AutoRecovery([database_connection(restart=Flaky(99), validate=Flaky(0))], clock=clock,
                       incidents=IncidentManager([sink], clock=clock))
    with pytest.raises(RecoveryExhausted) as info:
        await rec.recover("database_connection")
    assert info.value.attempts == 3 and isinstance(info.value.last_error, ConnectionError)
    assert [i.kind for i in sink.items] == ["alert", "incident"]
    assert all(i.severity is Severity.CRITICAL for i in sink.items)
    assert sink.items[1].context["attempts"] == 3
    stats = rec.stats("database_connection")
    assert (stats.runs, stats.successes, stats.success_rate) == (1, 0, 0.0)


async def test_external_service_falls_back_to_cached_data(clock):
    probe = Flaky(99)
    rec = AutoRecovery([external_service(probe=probe, cached=lambda: {"orders": []})], clock=clock)
    outcome = await rec.recover("external_service")
    assert not outcome.recovered and outcome.fallback_used and outcome.value == {"orders": []}
    assert probe.calls == 5 and clock.sleeps == [2.0] * 4


async def test_memory_exhaustion_clears_matching_caches_only(clock):
    keep = {"session": 1}
    drop = {"a": 1}

    class Lru:
        cleared = False

        def cache_clear(self):
            self.cleared = True

    lru = Lru()
    patterns_seen = []

    async def clear_external(pattern):
        patterns_seen.append(pattern)
        return 7

    rec = AutoRecovery([memory_exhaustion(caches={"sessions": keep, "page_cache": drop, "render_cache": lru},
                                          clear_external=clear_external)], clock=clock)
    outcome = await rec.recover("memory_exhaustion")
    assert outcome.recovered and outcome.attempts == 1
    assert keep == {"session": 1} and drop == {} and lru.cleared and patterns_seen == ["*cache*"]


async def test_registry_and_custom_strategy(clock):
    rec = AutoRecovery(clock=clock)
    rec.register(RecoveryStrategy("custom", Flaky(1), attempts=2, wait=wait_fixed(1)))
    with pytest.raises(ValueError, match="already registered"):
        rec.register(RecoveryStrategy("custom", Flaky(0)))
    rec.register(RecoveryStrategy("custom", Flaky(1), attempts=2, wait=wait_fixed(3)), replace=True)
    with pytest.raises(KeyError, match="'nope' not found in: custom"):
        await rec.recover("nope")
    assert (await rec.recover("custom")).recovered and clock.sleeps == [3]
    with pytest.raises(ValueError, match="attempts must be an integer >= 1"):
        RecoveryStrategy("x", Flaky(0), attempts=0)


async def test_stats_mean_and_p95(clock):
    durations = iter([1, 2, 3, 4, 100])

    async def action():
        clock.advance(next(durations))

    rec = AutoRecovery([RecoveryStrategy("s", action, attempts=1)], clock=clock)
    for _ in range(5):
        await rec.recover("s")
    stats = rec.stats("s")
    assert stats.mean_recovery_time == pytest.approx(22.0)
    assert stats.p95_recovery_time == pytest.approx(100.0)
    assert rec.all_stats()["s"]["success_rate"] == 1.0


async def test_sync_actions_are_accepted(clock):
    calls = []
    rec = AutoRecovery([RecoveryStrategy("sync", lambda: calls.append(1))], clock=clock)
    assert (await rec.recover("sync")).recovered and calls == [1]


async def test_repeated_exhaustion_counts_on_one_incident_resolved_by_success(clock):
    mgr = IncidentManager([ListSink()], clock=clock)
    restart = Flaky(6)
    rec = AutoRecovery([database_connection(restart=restart, validate=Flaky(0))], clock=clock, incidents=mgr)
    for _ in range(2):
        with pytest.raises(RecoveryExhausted):
            await rec.recover("database_connection")
    (incident,) = mgr.incidents.values()
    assert incident.repeats == 1 and incident.status.value == "open"
    assert (await rec.recover("database_connection")).recovered
    assert mgr.incidents[incident.id].status.value == "resolved"
