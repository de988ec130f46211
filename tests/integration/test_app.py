"""The reference app against real PostgreSQL and Redis: API contract, bounded failure, self-healing."""

from __future__ import annotations

import httpx
import pytest

from harness.app.server import STORE_KEY
from harness.env.local import LocalEnvironment

ORDER = {"customer": "ada", "item": "lamp", "quantity": 2, "amount": "19.90"}


@pytest.fixture(scope="module")
def env():
    with LocalEnvironment() as e:
        yield e


@pytest.fixture
def client(env):
    with httpx.Client(base_url=env.app_url, timeout=5) as c:
        yield c


def test_create_read_list(client) -> None:
    created = client.post("/orders", json=ORDER)
    assert created.status_code == 201
    order = created.json()
    assert order["amount"] == "19.90" and order["quantity"] == 2
    first = client.get(f"/orders/{order['id']}")
    assert first.status_code == 200 and first.json() == order
    assert first.headers["X-Cache"] == "hit"  # written through on create
    assert order["id"] in [o["id"] for o in client.get("/orders", params={"limit": 5}).json()]


@pytest.mark.parametrize(("body", "problem"), [
    ({**ORDER, "quantity": 0}, "quantity must be a positive integer"),
    ({**ORDER, "quantity": True}, "quantity must be a positive integer"),
    ({**ORDER, "customer": ""}, "customer must be a non-empty string"),
    ({**ORDER, "amount": "NaN"}, "amount must be a non-negative number"),
    ({**ORDER, "amount": -1}, "amount must be a non-negative number"),
    ([1, 2], "body must be a JSON object"),
])
def test_bad_orders_are_400_with_a_reason(client, body, problem) -> None:
    r = client.post("/orders", json=body)
    assert r.status_code == 400 and problem in r.json()["error"]


def test_other_bad_requests(client) -> None:
    assert client.post("/orders", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert client.get("/orders/abc").status_code == 400
    assert client.get("/orders/999999999").status_code == 404
    assert client.get("/orders", params={"limit": 0}).status_code == 400


def test_cache_miss_reads_the_database_and_refills(env, client) -> None:
    order = client.post("/orders", json=ORDER).json()
    import redis

    redis.Redis.from_url(env.redis.url).delete(f"order:{order['id']}")
    assert client.get(f"/orders/{order['id']}").headers["X-Cache"] == "miss"
    assert client.get(f"/orders/{order['id']}").headers["X-Cache"] == "hit"


def test_database_down_fails_fast_with_503_then_heals(env, client) -> None:
    cached = client.post("/orders", json=ORDER).json()
    env.postgres.kill()
    try:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"]["postgres"]["ok"] is False
        assert health.json()["checks"]["redis"]["ok"] is True
        write = client.post("/orders", json=ORDER)
        assert write.status_code == 503 and write.headers["Retry-After"] == "1"
        assert client.get(f"/orders/{cached['id']}").status_code == 200, "cached reads survive the outage"
    finally:
        env.postgres.start()
    assert client.get("/health").status_code == 200
    assert client.post("/orders", json=ORDER).status_code == 201, "reconnects on the next request"


def test_redis_down_keeps_orders_working_from_the_database(env, client) -> None:
    order = client.post("/orders", json=ORDER).json()
    env.redis.pause()
    try:
        assert client.get("/health").status_code == 503
        r = client.get(f"/orders/{order['id']}")
        assert r.status_code == 200 and r.headers["X-Cache"] == "miss"
    finally:
        env.redis.resume()


def test_metrics_expose_requests_and_dependencies(client) -> None:
    client.get("/health")
    text = client.get("/metrics").text
    assert 'chaosdrill_app_requests_total{route="/health",status="200"}' in text
    assert 'chaosdrill_app_dependency_up{dependency="postgres"}' in text


# ---------------------------------------------------------------------------------------------
# The app in-process (aiohttp's test server on 127.0.0.1) against real PostgreSQL and Redis, so a
# test can reach its breakers and read its event log directly.
@pytest.fixture
async def app_client(pg_server, redis_server, tmp_path):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from harness.app.server import AppSettings, create_app

    settings = AppSettings(host="127.0.0.1", port=0, pg_dsn=pg_server.dsn, redis_url=redis_server.url,
                           events_path=str(tmp_path / "events.jsonl"), breaker_failure_threshold=2,
                           breaker_wait_in_open=30.0, recovery_attempts=1, recovery_wait=0.05)
    app = create_app(settings)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("a bug in a handler")

    app.router.add_get("/boom", boom)  # an unhandled error, to see 500s counted
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        client.events_path = tmp_path / "events.jsonl"
        yield client


def _events(path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _wait_for(predicate, timeout: float = 30.0) -> None:
    """Poll until `predicate()` holds (a deadline for the test, not a timing assertion)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_forced_open_breaker_answers_503_with_a_finite_retry_after(app_client) -> None:
    app_client.app[STORE_KEY].pg_breaker.transition_to_forced_open()
    r = await app_client.post("/orders", json=ORDER)
    assert r.status == 503 and r.headers["X-Circuit"] == "open"
    assert r.headers["Retry-After"] == "30"  # capped at wait_in_open, not ceil(inf)


async def test_list_falls_back_to_the_last_cached_list_while_postgres_is_down(app_client, pg_server) -> None:
    created = (await (await app_client.post("/orders", json=ORDER)).json())
    fresh = await app_client.get("/orders", params={"limit": 5})
    assert fresh.status == 200 and fresh.headers["X-Served-From"] == "database"
    listed = await fresh.json()
    assert created["id"] in [o["id"] for o in listed]
    pg_server.kill()
    for _ in range(3):  # failing calls, then the open breaker: both served from the cache
        stale = await app_client.get("/orders", params={"limit": 5})
        assert stale.status == 200 and stale.headers["X-Served-From"] == "cache"
        assert await stale.json() == listed
    assert app_client.app[STORE_KEY].pg_breaker.state.value != "closed"
    never_listed = await app_client.get("/orders", params={"limit": 7})
    assert never_listed.status == 503 and never_listed.headers["X-Circuit"] == "open"


async def test_exhausted_recovery_reaches_the_event_log_once_per_incident(app_client, pg_server) -> None:
    pg_server.kill()
    for _ in range(2):
        assert (await app_client.post("/orders", json=ORDER)).status == 503
    path = app_client.events_path
    # recovery keeps failing: several exhausted rounds, each escalating the same problem
    await _wait_for(lambda: sum(e["kind"] == "recovery.end" for e in _events(path)) >= 3)
    events = _events(path)
    incidents = [e for e in events if e["kind"] == "incident"]
    assert len(incidents) == 1, "repeated escalations count on one open incident"
    assert incidents[0]["source"] == "database_connection" and incidents[0]["severity"] == "critical"
    assert any(e["kind"] == "alert" for e in events)
    manager = app_client.app[STORE_KEY].recovery.incidents
    (incident,) = manager.incidents.values()
    assert incident.repeats >= 2


async def test_metrics_expose_breaker_state_errors_and_500s(app_client, pg_server) -> None:
    assert (await app_client.get("/boom")).status == 500
    pg_server.kill()
    assert (await app_client.post("/orders", json=ORDER)).status == 503
    app_client.app[STORE_KEY].redis_breaker.transition_to_forced_open()
    r = await app_client.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    text = await r.text()
    assert 'chaosdrill_app_breaker_state{breaker="redis"} 4.0' in text
    assert 'chaosdrill_app_breaker_calls{breaker="postgres",outcome="failures"} 1.0' in text
    assert 'chaosdrill_app_dependency_errors_total{dependency="postgres"} 1.0' in text
    assert 'chaosdrill_app_requests_total{route="/boom",status="500"} 1.0' in text
    assert 'chaosdrill_app_server_errors_total{exception="RuntimeError",route="/boom"} 1.0' in text
