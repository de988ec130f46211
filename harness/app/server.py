"""The orders API: create (PostgreSQL), read by id (Redis cache in front of PostgreSQL), list.

Every dependency call is bounded (connect and command deadlines, no hidden client retries,
docs/recipes.md, section 6), so when a dependency dies the app answers 503 at once instead of hanging, and
when it comes back the next request reconnects: asyncpg's pool replaces dead connections on
acquire, and redis-py opens a new socket. That is what makes a drill's MTTR meaningful.

    GET  /health          200 when PostgreSQL (1 s) and Redis (0.5 s) answer, else 503 with details
    POST /orders          {"customer", "item", "quantity", "amount"} → 201 {"id", ...}
    GET  /orders/{id}     X-Cache: hit|miss
    GET  /orders?limit=N  newest first; X-Served-From: cache (stale) while PostgreSQL is unreachable
    GET  /metrics         Prometheus text (requests, dependency errors, breaker states, recoveries)

PostgreSQL and Redis calls go through circuit breakers (resilience/). When the database breaker
opens, writes fail fast with 503 + Retry-After + `X-Circuit: open`, reads (by id and the last
list of each limit) fall back to the Redis cache, and the `database_connection` recovery strategy restarts the pool and validates it; once
it succeeds the breaker is closed. Breaker and recovery events go, with CLOCK_MONOTONIC
timestamps, to a JSONL file that the harness merges into the run's timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from harness.app.sinks import build_sinks
from resilience.breaker import BreakerListener, CircuitBreaker
from resilience.errors import CircuitOpenError, RecoveryExhausted
from resilience.incidents import IncidentManager
from resilience.pool import AsyncpgPool
from resilience.recovery import AutoRecovery, external_service

log = logging.getLogger("chaosdrill.app")

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    item text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    amount numeric(12, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)"""
CACHE_TTL_S = 300
PG_DEADLINE_S = 1.0
REDIS_DEADLINE_S = 0.5


@dataclass(frozen=True)
class AppSettings:
    host: str
    port: int
    pg_dsn: str
    redis_url: str
    events_path: str | None = None
    breaker_failure_threshold: int = 5
    breaker_wait_in_open: float = 60.0
    recovery_attempts: int = 3
    recovery_wait: float = 1.0
    incidents: dict[str, Any] | None = None  # [incidents] as IncidentsConfig.spec(): sinks, dedup_window


class DependencyDown(Exception):
    """A dependency failed or missed its deadline; the request gets 503."""

    def __init__(self, dependency: str, cause: BaseException) -> None:
        super().__init__(f"{dependency}: {type(cause).__name__}: {cause}".strip())
        self.dependency = dependency
        self.circuit_open = isinstance(cause, CircuitOpenError)
        self.retry_after = cause.retry_after if self.circuit_open else 1.0


class EventLog(BreakerListener):
    """Breaker, recovery and alert events as JSONL lines stamped with CLOCK_MONOTONIC (shared with
    the harness on this host), so they land on the run's timeline at the right instant."""

    def __init__(self, path: str | None) -> None:
        self._file = open(path, "a", buffering=1) if path else None  # noqa: SIM115 - lives with the app

    def write(self, kind: str, source: str, **data: Any) -> None:
        if self._file is not None:
            self._file.write(json.dumps({"t_ns": time.monotonic_ns(), "kind": kind, "source": source, **data},
                                        default=str) + "\n")

    def on_state_change(self, event) -> None:
        self.write("breaker.state", event.breaker, **{"from": event.old.value, "to": event.new.value,
                                                     "reason": event.reason})

    def on_failure(self, event) -> None:
        self.write("breaker.failure", event.breaker)

    async def send(self, item) -> None:
        """IncidentSink: an escalation's alert becomes an `alert` event, its incident an `incident`
        event (incidents have no ``source``: the strategy in their context names it)."""
        source = getattr(item, "source", None) or item.context.get("strategy") or "incidents"
        data = {"severity": str(item.severity), "title": item.title}
        if item.kind == "incident":
            data.update(id=item.id, status=str(item.status), repeats=item.repeats)
        self.write(item.kind, source, **data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

class Metrics:
    """Prometheus series of the app; a registry of its own so tests can run several apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("chaosdrill_app_requests", "HTTP requests", ["route", "status"],
                                registry=self.registry)
        self.errors = Counter("chaosdrill_app_dependency_errors", "Failed dependency calls", ["dependency"],
                              registry=self.registry)
        self.server_errors = Counter("chaosdrill_app_server_errors", "Requests that ended in an unhandled error "
                                     "(HTTP 500)", ["route", "exception"], registry=self.registry)
        self.latency = Histogram("chaosdrill_app_request_seconds", "Request latency", ["route"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.dependency_up = Gauge("chaosdrill_app_dependency_up", "1 when the last call succeeded",
                                   ["dependency"], registry=self.registry)
        self.breaker_state = Gauge("chaosdrill_app_breaker_state",
                                   "closed 0, open 1, half_open 2, disabled 3, forced_open 4", ["breaker"],
                                   registry=self.registry)
        self.breaker_counts = Gauge("chaosdrill_app_breaker_calls", "breaker call outcomes since start",
                                    ["breaker", "outcome"], registry=self.registry)
        self.recoveries = Gauge("chaosdrill_app_recoveries", "automatic recovery runs since start",
                                ["strategy", "outcome"], registry=self.registry)

    def refresh(self, breakers: list[CircuitBreaker], recovery: AutoRecovery) -> None:
        """Copy breaker and recovery counters into the gauges just before /metrics is rendered."""
        for b in breakers:
            m = b.metrics()
            self.breaker_state.labels(b.name).set(m.state_code)
            for outcome in ("successes", "failures", "rejected", "slow_calls", "times_opened"):
                self.breaker_counts.labels(b.name, outcome).set(getattr(m, outcome))
        for name, stats in recovery.all_stats().items():
            self.recoveries.labels(name, "runs").set(stats.get("runs", 0))
            self.recoveries.labels(name, "successes").set(stats.get("successes", 0))


class Store:
    """PostgreSQL and Redis access with deadlines; raises DependencyDown on any failure."""

    def __init__(self, settings: AppSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.events = EventLog(settings.events_path)
        # min_size=0: the pool connects lazily, so the app starts even while PostgreSQL is down.
        self.pool = AsyncpgPool(settings.pg_dsn, min_size=0, max_size=10, timeout=PG_DEADLINE_S)
        self.redis = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=REDIS_DEADLINE_S, socket_connect_timeout=REDIS_DEADLINE_S,
            # One immediate retry: a pooled socket that died with the old server is replaced at once
            # (asyncpg's pool does the same via expire_connections); the 0.5 s deadline still bounds it.
            retry=Retry(NoBackoff(), 1), decode_responses=True,
        )
        breaker_settings = dict(failure_threshold=settings.breaker_failure_threshold,
                                wait_in_open=settings.breaker_wait_in_open, record_exceptions=(DependencyDown,))
        self.pg_breaker = CircuitBreaker("postgres", listeners=[self.events], **breaker_settings)
        self.redis_breaker = CircuitBreaker("redis", listeners=[self.events], **breaker_settings)
        self.recovery = AutoRecovery(
            [self.pool.strategy(attempts=settings.recovery_attempts, wait_per_attempt=settings.recovery_wait),
             external_service(probe=self._redis_ping, attempts=settings.recovery_attempts,
                              wait=settings.recovery_wait, name="cache_connection")],
            incidents=IncidentManager([self.events, *build_sinks(settings.incidents)],
                                      dedup_window=float((settings.incidents or {}).get("dedup_window", 300.0))))
        # Each breaker, when it opens, starts the strategy that can prove its dependency is back.
        self._strategy_of = {self.pg_breaker: "database_connection", self.redis_breaker: "cache_connection"}
        for breaker in self._strategy_of:
            breaker.add_listener(_OnOpen(lambda b=breaker: self._start_recovery(b)))
        self._recovering: dict[str, asyncio.Task] = {}
        self._schema_ready = False

    async def start(self) -> None:
        await self.pool.start()
        try:
            await self._ensure_schema()
        except DependencyDown as exc:
            log.warning("schema not created yet: %s", exc)

    async def close(self) -> None:
        for task in self._recovering.values():
            task.cancel()
        with contextlib.suppress(Exception):
            self.pool.pool.terminate()
        await self.redis.aclose()
        self.events.close()

    def _start_recovery(self, breaker: CircuitBreaker) -> None:
        """A breaker opened: run its recovery strategy in the background (one at a time)."""
        task = self._recovering.get(breaker.name)
        if task is None or task.done():
            self._recovering[breaker.name] = asyncio.get_running_loop().create_task(self._recover(breaker))

    async def _recover(self, breaker: CircuitBreaker) -> None:
        """Recovery rounds until the strategy succeeds or the breaker closed by other means. Each
        exhausted round escalates (the incident manager de-duplicates), then the next begins:
        waiting out the breaker's wait_in_open would add up to a minute to every outage."""
        name = self._strategy_of[breaker]
        while breaker.state.value != "closed":
            self.events.write("recovery.start", name, breaker=breaker.name)
            try:
                outcome = await self.recovery.recover(name)
            except RecoveryExhausted as exc:
                self.events.write("recovery.end", name, recovered=False, error=str(exc))
                await asyncio.sleep(self.settings.recovery_wait)
                continue
            self.events.write("recovery.end", name, recovered=outcome.recovered, attempts=outcome.attempts,
                              duration_s=round(outcome.duration, 6))
            if outcome.recovered and breaker.state.value != "closed":
                breaker.transition_to_closed()  # proven healthy: no need to wait out wait_in_open
            if outcome.recovered:
                return
            await asyncio.sleep(self.settings.recovery_wait)  # fell back to cached data: keep trying

    async def _redis_ping(self) -> None:
        """The cache_connection probe: a bounded PING outside the breaker."""
        async with asyncio.timeout(REDIS_DEADLINE_S):
            await self.redis.ping()

    async def _ensure_schema(self) -> None:
        if not self._schema_ready:
            await self._pg("execute", SCHEMA)
            self._schema_ready = True

    async def _pg(self, method: str, *args: Any) -> Any:
        try:
            return await self.pg_breaker.acall(self._pg_call, method, *args)
        except CircuitOpenError as exc:
            raise DependencyDown("postgres", exc) from exc

    async def _pg_call(self, method: str, *args: Any) -> Any:
        try:
            async with asyncio.timeout(PG_DEADLINE_S * 2):
                async with self.pool.pool.acquire() as conn:
                    result = await getattr(conn, method)(*args)
        # InternalClientError ("another operation is in progress") is what a connection whose server
        # died mid-query can raise; it is not an InterfaceError, and unmapped it made a 500.
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                TimeoutError) as exc:
            if not isinstance(exc, asyncpg.PostgresError) or isinstance(exc, asyncpg.PostgresConnectionError):
                # The server may have died: every pooled connection is suspect. Replace them all on
                # next use instead of failing one request per stale connection after it returns.
                await self.pool.pool.expire_connections()
            self.metrics.errors.labels("postgres").inc()
            self.metrics.dependency_up.labels("postgres").set(0)
            raise DependencyDown("postgres", exc) from exc
        self.metrics.dependency_up.labels("postgres").set(1)
        return result

    async def _redis(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self.redis_breaker.acall(self._redis_call, method, *args, **kwargs)
        except CircuitOpenError as exc:
            raise DependencyDown("redis", exc) from exc

    async def _redis_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(REDIS_DEADLINE_S):
                result = await getattr(self.redis, method)(*args, **kwargs)
        except (OSError, aioredis.RedisError, TimeoutError) as exc:
            self.metrics.errors.labels("redis").inc()
            self.metrics.dependency_up.labels("redis").set(0)
            raise DependencyDown("redis", exc) from exc
        self.metrics.dependency_up.labels("redis").set(1)
        return result

    async def _cache_put(self, order: dict[str, Any]) -> None:
        """Best effort: the order is stored in PostgreSQL; a cache miss refills it later."""
        with contextlib.suppress(DependencyDown):
            await self._redis("set", f"order:{order['id']}", json.dumps(order), ex=CACHE_TTL_S)

    async def create_order(self, order: dict[str, Any]) -> dict[str, Any]:
        await self._ensure_schema()
        row = await self._pg(
            "fetchrow",
            "INSERT INTO orders (customer, item, quantity, amount) VALUES ($1, $2, $3, $4) "
            "RETURNING id, customer, item, quantity, amount, created_at",
            order["customer"], order["item"], order["quantity"], order["amount"],
        )
        result = _row(row)
        await self._cache_put(result)
        return result

    async def get_order(self, order_id: int) -> tuple[dict[str, Any] | None, bool]:
        """The order and whether it came from the cache."""
        try:
            cached = await self._redis("get", f"order:{order_id}")
        except DependencyDown:
            cached = None
        if cached:
            return json.loads(cached), True
        await self._ensure_schema()
        row = await self._pg("fetchrow", "SELECT id, customer, item, quantity, amount, created_at "
                                         "FROM orders WHERE id = $1", order_id)
        if row is None:
            return None, False
        result = _row(row)
        await self._cache_put(result)
        return result, False

    async def list_orders(self, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The newest orders and whether they came from the cache: while PostgreSQL is unreachable
        (breaker open or a failed call) the last list served for this limit is returned, stale."""
        key = f"orders:list:{limit}"
        try:
            await self._ensure_schema()
            rows = await self._pg("fetch", "SELECT id, customer, item, quantity, amount, created_at "
                                           "FROM orders ORDER BY id DESC LIMIT $1", limit)
        except DependencyDown:
            try:
                cached = await self._redis("get", key)
            except DependencyDown:
                cached = None
            if cached is None:
                raise
            return json.loads(cached), True
        result = [_row(r) for r in rows]
        with contextlib.suppress(DependencyDown):
            await self._redis("set", key, json.dumps(result), ex=CACHE_TTL_S)
        return result, False

    async def health(self) -> dict[str, Any]:
        async def check(name: str, call) -> tuple[str, dict[str, Any]]:
            t0 = time.perf_counter()
            try:
                await call()
                return name, {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}
            except DependencyDown as exc:
                return name, {"ok": False, "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
                              "error": str(exc)}

        results = dict(await asyncio.gather(check("postgres", lambda: self._pg("fetchval", "SELECT 1")),
                                            check("redis", lambda: self._redis("ping"))))
        for name, breaker in (("postgres", self.pg_breaker), ("redis", self.redis_breaker)):
            results[name]["breaker"] = breaker.state.value
        return results


def _row(row: asyncpg.Record) -> dict[str, Any]:
    d = dict(row)
    d["amount"] = str(d["amount"])
    d["created_at"] = d["created_at"].isoformat()
    return d


def _validate_order(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "body must be a JSON object"}),
                                 content_type="application/json")
    problems = []
    for key in ("customer", "item"):
        if not isinstance(body.get(key), str) or not body[key].strip() or len(body[key]) > 200:
            problems.append(f"{key} must be a non-empty string of at most 200 characters")
    if not isinstance(body.get("quantity"), int) or isinstance(body.get("quantity"), bool) or body["quantity"] < 1:
        problems.append("quantity must be a positive integer")
    try:
        amount = Decimal(str(body.get("amount")))
        if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        problems.append("amount must be a non-negative number below 1e10")
        amount = Decimal(0)
    if problems:
        raise web.HTTPBadRequest(text=json.dumps({"error": "; ".join(problems)}), content_type="application/json")
    return {"customer": body["customer"], "item": body["item"], "quantity": body["quantity"], "amount": amount}


# Typed application keys (a plain string key is aiohttp's NotAppKeyWarning): app[STORE_KEY] in tests.
STORE_KEY = web.AppKey("store", Store)
METRICS_KEY = web.AppKey("metrics", Metrics)


def create_app(settings: AppSettings) -> web.Application:
    metrics = Metrics()
    store = Store(settings, metrics)
    routes = web.RouteTableDef()

    def unavailable(exc: DependencyDown) -> web.Response:
        # FORCED_OPEN has no end (retry_after = inf): advise the breaker's wait instead
        retry = min(exc.retry_after, settings.breaker_wait_in_open)
        headers = {"Retry-After": str(max(1, math.ceil(retry)))}
        if exc.circuit_open:
            headers["X-Circuit"] = "open"  # failed fast: the dependency was not even tried
        return web.json_response({"error": str(exc)}, status=503, headers=headers)

    @routes.get("/health")
    async def health(request: web.Request) -> web.Response:
        checks = await store.health()
        ok = all(c["ok"] for c in checks.values())
        headers = {"X-Circuit": "open"} if any(c["breaker"] != "closed" for c in checks.values()) else {}
        return web.json_response({"status": "ok" if ok else "degraded", "checks": checks},
                                 status=200 if ok else 503, headers=headers)

    @routes.post("/orders")
    async def create(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"error": "body is not valid JSON"}, status=400)
        order = _validate_order(body)
        try:
            return web.json_response(await store.create_order(order), status=201)
        except DependencyDown as exc:
            return unavailable(exc)

    @routes.get("/orders/{order_id}")
    async def read(request: web.Request) -> web.Response:
        try:
            order_id = int(request.match_info["order_id"])
        except ValueError:
            return web.json_response({"error": "order id must be an integer"}, status=400)
        try:
            order, hit = await store.get_order(order_id)
        except DependencyDown as exc:
            return unavailable(exc)
        if order is None:
            return web.json_response({"error": f"order {order_id} not found"}, status=404)
        return web.json_response(order, headers={"X-Cache": "hit" if hit else "miss"})

    @routes.get("/orders")
    async def list_(request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "20"))
            if not 1 <= limit <= 1000:
                raise ValueError
        except ValueError:
            return web.json_response({"error": "limit must be an integer from 1 to 1000"}, status=400)
        try:
            orders, stale = await store.list_orders(limit)
        except DependencyDown as exc:
            return unavailable(exc)
        return web.json_response(orders, headers={"X-Served-From": "cache" if stale else "database"})

    @routes.get("/metrics")
    async def metrics_(request: web.Request) -> web.Response:
        metrics.refresh([store.pg_breaker, store.redis_breaker], store.recovery)
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @web.middleware
    async def count(request: web.Request, handler) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        t0 = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            metrics.requests.labels(route, str(exc.status)).inc()
            raise
        except Exception as exc:  # aiohttp answers 500: count it like any other response
            metrics.requests.labels(route, "500").inc()
            metrics.server_errors.labels(route, type(exc).__name__).inc()
            raise  # aiohttp logs it
        metrics.requests.labels(route, str(response.status)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - t0)
        return response

    app = web.Application(middlewares=[count])
    app.add_routes(routes)
    app[STORE_KEY] = store
    app[METRICS_KEY] = metrics

    async def lifecycle(app: web.Application):
        await store.start()
        yield
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def run(settings: AppSettings) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None,
                access_log=None, handle_signals=True)


class _OnOpen(BreakerListener):
    """Calls `action` whenever the breaker opens (the trigger for automatic recovery)."""

    def __init__(self, action) -> None:
        self.action = action

    def on_state_change(self, event) -> None:
        if event.new.value == "open":
            self.action()
