"""The reference app against real PostgreSQL and Redis: API contract, bounded failure, self-healing."""

from __future__ import annotations

import time

import httpx
import pytest

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
        t0 = time.perf_counter()
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"]["postgres"]["ok"] is False
        assert health.json()["checks"]["redis"]["ok"] is True
        write = client.post("/orders", json=ORDER)
        assert write.status_code == 503 and write.headers["Retry-After"] == "1"
        assert time.perf_counter() - t0 < 5, "dependency calls are bounded"
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
