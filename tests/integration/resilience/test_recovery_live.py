"""database_connection recovery of a real asyncpg pool across a PostgreSQL crash and restart."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from resilience.errors import RecoveryExhausted
from resilience.incidents import IncidentManager
from resilience.pool import AsyncpgPool
from resilience.recovery import AutoRecovery

pytestmark = pytest.mark.timeout(90)


class ListSink:
    def __init__(self) -> None:
        self.items = []

    async def send(self, item) -> None:
        self.items.append(item)


async def test_pool_recovers_after_postgres_restart(pg_server):
    pool = AsyncpgPool(pg_server.dsn, min_size=2, max_size=4, test_queries=("SELECT 1", "SELECT count(*) FROM pg_class"))
    await pool.start()
    try:
        assert await pool.fetchval("SELECT 41 + 1") == 42
        rec = AutoRecovery([pool.strategy(wait_per_attempt=0.3)])

        pg_server.kill()
        with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError)):
            await pool.fetchval("SELECT 1")

        async def bring_back():
            await asyncio.sleep(0.5)  # PostgreSQL returns while recovery is retrying
            await asyncio.to_thread(pg_server.start)

        comeback = asyncio.create_task(bring_back())
        outcome = await rec.recover("database_connection")
        await comeback
        assert outcome.recovered and outcome.attempts >= 2
        assert await pool.fetchval("SELECT 2") == 2
        assert pool.restarts == 1  # failed restarts do not count
        stats = rec.stats("database_connection")
        assert stats.success_rate == 1.0 and stats.mean_recovery_time > 0.3
    finally:
        await pool.close()


async def test_recovery_escalates_when_postgres_stays_down(pg_server):
    pool = AsyncpgPool(pg_server.dsn, timeout=0.5)
    await pool.start()
    sink = ListSink()
    rec = AutoRecovery([pool.strategy(wait_per_attempt=0.05)], incidents=IncidentManager([sink]))
    pg_server.kill()
    try:
        with pytest.raises(RecoveryExhausted) as info:
            await rec.recover("database_connection")
        assert info.value.attempts == 3
        assert [i.kind for i in sink.items] == ["alert", "incident"]
    finally:
        await pool.close()
