"""Real clients through the proxy while toxics change: asyncpg and psql to PostgreSQL, redis-py and redis-cli to Redis."""

from __future__ import annotations

import shutil
import subprocess
import time

import asyncpg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PSQL = shutil.which("psql")
REDIS_CLI = shutil.which("redis-cli")
NO_RETRY = Retry(NoBackoff(), 0)  # redis-py retries by default; we want to see each failure


@pytest.fixture
def pg_proxy(tp, pg_server):
    return tp.create_proxy("pg", upstream=f"127.0.0.1:{pg_server.port}")


@pytest.fixture
def redis_proxy(tp, redis_server):
    return tp.create_proxy("redis", upstream=f"127.0.0.1:{redis_server.port}")


def _dsn(proxy) -> str:
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"


async def test_asyncpg_latency_then_reset_then_recover(tp, pg_proxy):
    conn = await asyncpg.connect(_dsn(pg_proxy), timeout=10)
    assert await conn.fetchval("select 1") == 1
    tp.add_toxic("pg", "latency", name="lat", attributes={"latency": 100})
    t0 = time.monotonic()
    assert await conn.fetchval("select 2") == 2
    assert time.monotonic() - t0 >= 0.095
    tp.remove_toxic("pg", "lat")
    t0 = time.monotonic()
    assert await conn.fetchval("select 3") == 3
    assert time.monotonic() - t0 < 0.09
    tp.add_toxic("pg", "reset_peer", stream="upstream")
    with pytest.raises((ConnectionError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
        await conn.fetchval("select 4", timeout=5)
    await conn.close(timeout=1)
    tp.reset()
    conn = await asyncpg.connect(_dsn(pg_proxy), timeout=10)
    assert await conn.fetchval("select repeat('x', 100000)") == "x" * 100000
    await conn.close()


async def test_asyncpg_proxy_down_and_up(tp, pg_proxy):
    conn = await asyncpg.connect(_dsn(pg_proxy), timeout=10)
    tp.disable_proxy("pg")
    with pytest.raises((ConnectionError, OSError, asyncpg.InterfaceError, asyncpg.PostgresError)):
        await conn.fetchval("select 1", timeout=5)
    with pytest.raises(OSError):
        await asyncpg.connect(_dsn(pg_proxy), timeout=2)
    tp.enable_proxy("pg")
    conn = await asyncpg.connect(_dsn(pg_proxy), timeout=10)
    assert await conn.fetchval("select 1") == 1
    await conn.close()


@pytest.mark.skipif(PSQL is None, reason="psql not installed")
def test_psql_through_latency_and_timeout(tp, pg_proxy):
    cmd = [
        PSQL,
        "-h",
        "127.0.0.1",
        "-p",
        str(pg_proxy.port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-Atc",
        "select 40+2",
    ]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip() == "42"
    tp.add_toxic("pg", "latency", attributes={"latency": 50})
    t0 = time.monotonic()
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip() == "42"
    assert time.monotonic() - t0 >= 0.1  # several round trips, each +50 ms
    tp.add_toxic("pg", "timeout", attributes={"timeout": 300})
    env = {"PGCONNECT_TIMEOUT": "5", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, env=env)
    assert proc.returncode != 0


def test_redis_py_toxics(tp, redis_proxy):
    r = redis.Redis(
        host="127.0.0.1", port=redis_proxy.port, socket_timeout=3, socket_connect_timeout=3, retry=NO_RETRY
    )
    assert r.ping()
    r.set("k", "v" * 10000)
    tp.add_toxic("redis", "latency", name="lat", attributes={"latency": 80})
    t0 = time.monotonic()
    assert r.get("k") == b"v" * 10000
    assert time.monotonic() - t0 >= 0.075
    tp.remove_toxic("redis", "lat")
    tp.add_toxic("redis", "limit_data", attributes={"bytes": 100})
    with pytest.raises(redis.ConnectionError):
        r.get("k")
    tp.reset()
    r2 = redis.Redis(host="127.0.0.1", port=redis_proxy.port, socket_timeout=1, retry=NO_RETRY)
    assert r2.get("k") == b"v" * 10000
    tp.add_toxic("redis", "timeout", attributes={"timeout": 0})
    with pytest.raises(redis.TimeoutError):
        r2.ping()
    r.close()
    r2.close()


@pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli not installed")
def test_redis_cli_bandwidth_and_down(tp, redis_proxy):
    cli = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(redis_proxy.port)]
    assert subprocess.run([*cli, "PING"], capture_output=True, text=True, timeout=10).stdout.strip() == "PONG"
    subprocess.run([*cli, "SET", "big", "b" * 50000], capture_output=True, timeout=10, check=True)
    tp.add_toxic("redis", "bandwidth", attributes={"rate": 100})  # 100 KB/s: 50 kB takes ~0.5 s
    t0 = time.monotonic()
    out = subprocess.run([*cli, "GET", "big"], capture_output=True, text=True, timeout=10).stdout.strip()
    assert out == "b" * 50000 and time.monotonic() - t0 >= 0.4
    tp.disable_proxy("redis")
    proc = subprocess.run([*cli, "PING"], capture_output=True, text=True, timeout=10)
    assert "PONG" not in proc.stdout
