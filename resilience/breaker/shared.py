"""Breaker state shared by several processes through Redis, with a local fallback.

Every decision is one Lua script, so it is atomic across processes::

    call ─► ACQUIRE (admit? state, retry_after, epoch) ─► fn() ─► RECORD (outcome, slow) ─► state
                │ Redis unreachable                         (same rules as CircuitBreaker)
                ▼
        local CircuitBreaker logic; one warning; Redis is tried again after `reconnect_interval`

The Redis hash ``{prefix}{name}`` holds the state, epoch, consecutive-failure run, window
counts and HALF_OPEN permits. Count windows keep outcome codes in a list; time windows keep
one-second buckets as hash fields. Time comes from Redis (``TIME`` inside the scripts), so
processes whose wall clocks disagree still agree on buckets and on when OPEN ends; the
breaker's own (injectable) clock times calls and drives the local fallback. A backoff
function is evaluated in Python for attempts 1..16 and handed to the script as a table.
Clients have socket timeouts and no retries (docs/recipes.md, section 6), so a stuck Redis costs at most
``timeout`` once per ``reconnect_interval``; an outcome whose RECORD fails is recorded
locally instead. Shared mode costs two round trips per call; use it where agreement matters
more than µs. ``call``/``acall`` and the decorator are shared; ``with breaker:`` is local.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from resilience.breaker.breaker import CircuitBreaker
from resilience.breaker.config import BreakerConfig, to_seconds
from resilience.breaker.events import CallFailed, CallRejected, CallSucceeded, SlowCall, StateChanged
from resilience.breaker.state import BreakerState
from resilience.errors import CircuitOpenError

__all__ = ["RedisBreakerStore", "SharedCircuitBreaker"]

log = logging.getLogger(__name__)

BACKOFF_TABLE = 16

# Redis's clock in ms: one clock for every process (TIME is allowed before writes since Redis 5).
NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] = hash. ARGV: permits. Returns {admitted, state, retry_ms, epoch}.
ACQUIRE = NOW + """
local k = KEYS[1]
local permits = tonumber(ARGV[1])
local st = redis.call('HGET', k, 'state') or 'closed'
local epoch = tonumber(redis.call('HGET', k, 'epoch') or '0')
if st == 'closed' or st == 'disabled' then return {1, st, 0, epoch} end
if st == 'forced_open' then return {0, st, -1, epoch} end
if st == 'open' then
  local untl = tonumber(redis.call('HGET', k, 'open_until') or '0')
  if now < untl then return {0, st, untl - now, epoch} end
  epoch = epoch + 1
  st = 'half_open'
  redis.call('HSET', k, 'state', st, 'epoch', epoch, 'ho_issued', 0, 'ho_done', 0, 'ho_failed', 0, 'ho_slow', 0)
end
local issued = redis.call('HINCRBY', k, 'ho_issued', 1)
if issued <= permits then return {1, st, 0, epoch} end
redis.call('HINCRBY', k, 'ho_issued', -1)
return {0, st, 0, epoch}
"""

# KEYS[1] = hash, KEYS[2] = count-window list.
# ARGV: epoch, outcome (s|f|i), slow (0|1), ft, fr, sr, wtype, wsize, min_calls, permits,
#       uses_rates, waits (comma-separated ms for attempts 1..n)
# Returns {state, epoch, open_until - now}.
RECORD = NOW + """
local k, lk = KEYS[1], KEYS[2]
local tok, outcome, slow = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local ft, fr, sr = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local wtype, wsize, minc = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local permits, rates = tonumber(ARGV[10]), tonumber(ARGV[11])
local waits = {}
for w in string.gmatch(ARGV[12], '[^,]+') do waits[#waits + 1] = tonumber(w) end
local st = redis.call('HGET', k, 'state') or 'closed'
local epoch = tonumber(redis.call('HGET', k, 'epoch') or '0')

local function untl() return tonumber(redis.call('HGET', k, 'open_until') or '0') - now end

local function clear_window()
  redis.call('DEL', lk)
  local fields = redis.call('HKEYS', k)
  for _, f in ipairs(fields) do
    if string.sub(f, 1, 2) == 'b:' then redis.call('HDEL', k, f) end
  end
  redis.call('HSET', k, 'w_calls', 0, 'w_fail', 0, 'w_slow', 0, 'run', 0)
end

local function go(new)
  epoch = epoch + 1
  if new == 'open' then
    local attempt = redis.call('HINCRBY', k, 'open_attempts', 1)
    redis.call('HINCRBY', k, 'times_opened', 1)
    local wait = waits[math.min(attempt, #waits)]
    redis.call('HSET', k, 'open_until', now + wait)
  end
  if new == 'closed' then redis.call('HSET', k, 'open_attempts', 0) end
  if st == 'closed' or new == 'closed' then clear_window() end
  st = new
  redis.call('HSET', k, 'state', st, 'epoch', epoch)
end

if tok ~= epoch or (st ~= 'closed' and st ~= 'half_open') then return {st, epoch, untl()} end
if outcome == 'i' then
  if st == 'half_open' then redis.call('HINCRBY', k, 'ho_issued', -1) end
  return {st, epoch, 0}
end
local failed = 0
if outcome == 'f' then failed = 1 end
redis.call('HINCRBY', k, 'failures', failed)
redis.call('HINCRBY', k, 'calls', 1)
redis.call('HINCRBY', k, 'slow_calls', slow)

if st == 'half_open' then
  local done = redis.call('HINCRBY', k, 'ho_done', 1)
  local hf = redis.call('HINCRBY', k, 'ho_failed', failed)
  local hs = redis.call('HINCRBY', k, 'ho_slow', slow)
  if rates == 1 then
    if done >= permits then
      if (fr >= 0 and hf * 100 >= fr * permits) or (sr >= 0 and hs * 100 >= sr * permits) then go('open')
      else go('closed') end
    end
  elseif hf > 0 then go('open')
  elseif done >= permits then go('closed') end
  return {st, epoch, untl()}
end

-- CLOSED
local run = 0
if failed == 1 then run = redis.call('HINCRBY', k, 'run', 1) else redis.call('HSET', k, 'run', 0) end
local calls, fails, slows
if wtype == 'count' then
  if redis.call('LLEN', lk) >= wsize then
    local old = tonumber(redis.call('RPOP', lk))
    redis.call('HINCRBY', k, 'w_calls', -1)
    redis.call('HINCRBY', k, 'w_fail', -(old % 2))
    redis.call('HINCRBY', k, 'w_slow', -math.floor(old / 2))
  end
  redis.call('LPUSH', lk, failed + 2 * slow)
  calls = redis.call('HINCRBY', k, 'w_calls', 1)
  fails = redis.call('HINCRBY', k, 'w_fail', failed)
  slows = redis.call('HINCRBY', k, 'w_slow', slow)
else
  local e = math.floor(now / 1000)
  local last = tonumber(redis.call('HGET', k, 'b_last') or tostring(e))
  if e - last >= wsize then
    for _, f in ipairs(redis.call('HKEYS', k)) do
      if string.sub(f, 1, 2) == 'b:' then redis.call('HDEL', k, f) end
    end
  else
    for i = last - wsize + 1, e - wsize do
      redis.call('HDEL', k, 'b:c:' .. i, 'b:f:' .. i, 'b:s:' .. i)
    end
  end
  redis.call('HINCRBY', k, 'b:c:' .. e, 1)
  redis.call('HINCRBY', k, 'b:f:' .. e, failed)
  redis.call('HINCRBY', k, 'b:s:' .. e, slow)
  calls, fails, slows = 0, 0, 0
  for i = e - wsize + 1, e do
    calls = calls + tonumber(redis.call('HGET', k, 'b:c:' .. i) or '0')
    fails = fails + tonumber(redis.call('HGET', k, 'b:f:' .. i) or '0')
    slows = slows + tonumber(redis.call('HGET', k, 'b:s:' .. i) or '0')
  end
  redis.call('HSET', k, 'b_last', e)
end
if ft > 0 and run >= ft then go('open')
elseif rates == 1 and calls >= minc and ((fr >= 0 and fails * 100 >= fr * calls) or
                                          (sr >= 0 and slows * 100 >= sr * calls)) then go('open') end
return {st, epoch, untl()}
"""

# KEYS[1] = hash, KEYS[2] = list. ARGV: new state, wait_ms. Operator transitions and reset.
FORCE = NOW + """
local k, lk = KEYS[1], KEYS[2]
local epoch = tonumber(redis.call('HGET', k, 'epoch') or '0') + 1
redis.call('DEL', lk)
for _, f in ipairs(redis.call('HKEYS', k)) do
  if string.sub(f, 1, 2) == 'b:' then redis.call('HDEL', k, f) end
end
redis.call('HSET', k, 'state', ARGV[1], 'epoch', epoch, 'run', 0, 'w_calls', 0, 'w_fail', 0, 'w_slow', 0,
           'ho_issued', 0, 'ho_done', 0, 'ho_failed', 0, 'ho_slow', 0)
if ARGV[1] == 'open' then redis.call('HSET', k, 'open_until', now + tonumber(ARGV[2])) end
if ARGV[1] == 'closed' then redis.call('HSET', k, 'open_attempts', 0) end
return epoch
"""

# KEYS[1] = hash. ARGV: wtype, wsize. Read-only. Returns {state, window calls, window failures,
# window slow calls, run, times_opened, open_until - now}: the shared numbers behind metrics().
METRICS = NOW + """
local k, wtype, wsize = KEYS[1], ARGV[1], tonumber(ARGV[2])
local function num(f) return tonumber(redis.call('HGET', k, f) or '0') end
local st = redis.call('HGET', k, 'state') or 'closed'
local calls, fails, slows = 0, 0, 0
if wtype == 'count' then
  calls, fails, slows = num('w_calls'), num('w_fail'), num('w_slow')
else
  local e = math.floor(now / 1000)
  for i = e - wsize + 1, e do
    calls = calls + num('b:c:' .. i)
    fails = fails + num('b:f:' .. i)
    slows = slows + num('b:s:' .. i)
  end
end
return {st, calls, fails, slows, num('run'), num('times_opened'), num('open_until') - now}
"""


class RedisBreakerStore:
    """Redis connection settings and the scripts; one store can serve many breakers."""

    def __init__(self, url: str, *, prefix: str = "chaosdrill:breaker:", timeout: float = 0.25,
                 reconnect_interval: float = 5.0) -> None:
        self.url, self.prefix, self.timeout, self.reconnect_interval = url, prefix, timeout, reconnect_interval
        self._sync = None
        self._async = None

    def _options(self) -> dict[str, Any]:
        return {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout,
                "health_check_interval": 0, "decode_responses": True}

    @property
    def sync_client(self):
        if self._sync is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            client = redis.Redis.from_url(self.url, retry=Retry(NoBackoff(), 0), **self._options())
            self._sync = (client, client.register_script(ACQUIRE), client.register_script(RECORD),
                          client.register_script(FORCE), client.register_script(METRICS))
        return self._sync

    @property
    def async_client(self):
        if self._async is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            client = Redis.from_url(self.url, retry=Retry(NoBackoff(), 0), **self._options())
            self._async = (client, client.register_script(ACQUIRE), client.register_script(RECORD),
                           client.register_script(FORCE), client.register_script(METRICS))
        return self._async

    def keys(self, name: str) -> list[str]:
        return [f"{self.prefix}{name}", f"{self.prefix}{name}:window"]

    def snapshot(self, name: str) -> dict[str, str]:
        """The raw shared hash (for metrics and debugging)."""
        return self.sync_client[0].hgetall(self.keys(name)[0])

    def close(self) -> None:
        if self._sync is not None:
            self._sync[0].close()
            self._sync = None

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async[0].aclose()
            self._async = None


_STATE = {s.value: s for s in BreakerState}


class SharedCircuitBreaker(CircuitBreaker):
    """A CircuitBreaker whose state lives in Redis; falls back to local state if Redis is down.

    Same settings and API as :class:`CircuitBreaker`. The shared hot path is two Lua calls,
    so the local fast paths are bypassed while Redis is reachable.
    """

    def __init__(self, name: str, store: RedisBreakerStore, config: BreakerConfig | None = None,
                 **kwargs: Any) -> None:
        self.store = store
        self._degraded_until = 0  # monotonic ns; 0 = use Redis
        self._warned = False
        self._shared_state = BreakerState.CLOSED
        super().__init__(name, config, **kwargs)
        cfg = self.config
        waits = []
        for attempt in range(1, BACKOFF_TABLE + 1):
            seconds = to_seconds(cfg.wait_in_open)
            if cfg.wait_in_open_backoff is not None:
                try:
                    seconds = to_seconds(cfg.wait_in_open_backoff(attempt))
                    if not math.isfinite(seconds):
                        raise ValueError(f"backoff({attempt}) = {seconds!r} is not finite")
                except Exception:
                    log.exception("breaker %r: wait_in_open_backoff failed; using wait_in_open", name)
                    seconds = to_seconds(cfg.wait_in_open)
            waits.append(str(max(0, round(seconds * 1000))))
        self._record_args = [
            cfg.failure_threshold or 0,
            -1 if cfg.failure_rate_threshold is None else cfg.failure_rate_threshold,
            -1 if cfg.slow_call_rate_threshold is None else cfg.slow_call_rate_threshold,
            cfg.sliding_window_type, cfg.sliding_window_size, cfg.minimum_calls,
            cfg.half_open_permitted_calls, 1 if cfg.uses_rates else 0, ",".join(waits),
        ]
        self._keys = store.keys(name)

    # -------------------------------------------------------------- routing
    def _select_paths(self) -> None:
        super()._select_paths()
        self._local_call, self._local_acall = self.call, self.acall
        self.call, self.acall = self._shared_call, self._shared_acall

    def _use_redis(self) -> bool:
        return self._degraded_until == 0 or self._now() >= self._degraded_until

    def _redis_failed(self, exc: BaseException) -> None:
        self._degraded_until = self._now() + round(self.store.reconnect_interval * 1e9)
        if not self._warned:
            self._warned = True
            log.warning("breaker %r: Redis at %s unreachable (%r); using local state until it answers",
                        self.name, self.store.url, exc)

    def _redis_ok(self) -> None:
        if self._degraded_until:
            self._degraded_until = 0
            if self._warned:
                log.info("breaker %r: Redis reachable again; back to shared state", self.name)
            self._warned = False

    @property
    def state(self) -> BreakerState:
        return self._local_state_if_degraded()

    def _local_state_if_degraded(self) -> BreakerState:
        return self._state if self._degraded_until else self._shared_state

    def _observe(self, state_value: str, reason: str) -> BreakerState:
        new = _STATE[state_value]
        old = self._shared_state
        if new is not old:
            self._shared_state = new
            if "on_state_change" in self._hooks:
                self._emit("on_state_change", StateChanged(self.name, self._now(), old, new, reason))
        return new

    def _reject(self, state: BreakerState, retry_ms: int) -> CircuitOpenError:
        retry = float("inf") if retry_ms < 0 else retry_ms / 1000
        self._count_rejection()
        if self._on_rejected_hooks:
            self._emit("on_rejected", CallRejected(self.name, self._now(), state, retry))
        return CircuitOpenError(self.name, retry)

    def _outcome(self, exc: BaseException | None) -> str:
        if exc is None:
            return "s"
        try:
            kind = self._classify(exc)
        except Exception:
            return "f"
        return {0: "i", 1: "f", 2: "s"}[kind]

    # -------------------------------------------------------------- sync
    def _shared_call(self, fn, /, *args, **kwargs):
        if not self._use_redis():
            return self._local_call(fn, *args, **kwargs)
        _, acquire, record, *_ = self.store.sync_client
        try:
            admitted, state, retry_ms, epoch = acquire(keys=self._keys[:1],
                                                       args=[self.config.half_open_permitted_calls])
        except Exception as exc:  # redis errors of any kind: degrade, never fail the call for it
            self._redis_failed(exc)
            return self._local_call(fn, *args, **kwargs)
        self._redis_ok()
        state = self._observe(state, "shared")
        if not admitted:
            raise self._reject(state, int(retry_ms))
        if state is BreakerState.DISABLED:
            return fn(*args, **kwargs)
        start = self._now()
        error = None
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._record_shared(record, epoch, error, start)

    def _record_shared(self, record, epoch, error, start) -> None:
        end = self._now()
        outcome = self._outcome(error)
        slow = 1 if end - start >= self._slow_ns else 0
        try:
            result = record(keys=self._keys, args=[epoch, outcome, slow, *self._record_args])
        except Exception as exc:
            self._redis_failed(exc)
            self._record_locally(error, start, end)
            return
        self._after_record(result, outcome, error, slow, start, end)

    def _record_locally(self, error, start, end) -> None:
        """RECORD did not reach Redis: the outcome counts in the local state it falls back to."""
        if error is None:
            self._on_success(None, start, end)
        else:
            self._on_exception(None, error, start, end)

    def _after_record(self, result, outcome, error, slow, start, end) -> None:
        self._observe(result[0], "shared")
        if outcome == "f":
            self._failures += 1
        elif outcome == "i":
            self._ignored += 1
        self._slow_calls += slow
        self._ho_recorded += outcome != "i"  # counted as recorded calls for local metrics
        hooks = self._hooks
        if hooks and outcome != "i":  # the same events as the local breaker
            duration = end - start
            if outcome == "s" and "on_success" in hooks:
                self._emit("on_success", CallSucceeded(self.name, end, duration))
            elif outcome == "f" and "on_failure" in hooks:
                self._emit("on_failure", CallFailed(self.name, end, duration, error))
            if slow and "on_slow_call" in hooks:
                self._emit("on_slow_call", SlowCall(self.name, end, duration, outcome == "s"))

    # -------------------------------------------------------------- async
    async def _shared_acall(self, fn, /, *args, **kwargs):
        if not self._use_redis():
            return await self._local_acall(fn, *args, **kwargs)
        _, acquire, record, *_ = self.store.async_client
        try:
            admitted, state, retry_ms, epoch = await acquire(
                keys=self._keys[:1], args=[self.config.half_open_permitted_calls])
        except Exception as exc:
            self._redis_failed(exc)
            return await self._local_acall(fn, *args, **kwargs)
        self._redis_ok()
        state = self._observe(state, "shared")
        if not admitted:
            raise self._reject(state, int(retry_ms))
        if state is BreakerState.DISABLED:
            return await fn(*args, **kwargs)
        start = self._now()
        error = None
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            end = self._now()
            outcome = self._outcome(error)
            slow = 1 if end - start >= self._slow_ns else 0
            try:
                result = await record(keys=self._keys, args=[epoch, outcome, slow, *self._record_args])
            except Exception as exc:
                self._redis_failed(exc)
                self._record_locally(error, start, end)
            else:
                self._after_record(result, outcome, error, slow, start, end)

    # -------------------------------------------------------------- operator controls
    def _manual(self, new: BreakerState) -> None:
        super()._manual(new)
        self._force_shared(new)

    def metrics(self):
        """Call counters of this process; state, window, run, times opened and retry from Redis.

        While Redis is unreachable (or does not answer now) everything is local.
        """
        m = super().metrics()
        if self._degraded_until:
            return m
        cfg = self.config
        try:
            st, calls, fails, slows, run, opened, until_ms = self.store.sync_client[4](
                keys=self._keys[:1], args=[cfg.sliding_window_type, cfg.sliding_window_size])
        except Exception as exc:
            self._redis_failed(exc)
            return super().metrics()
        state = self._observe(st, "shared")
        if state is BreakerState.FORCED_OPEN:
            retry = math.inf
        else:
            retry = max(0, int(until_ms)) / 1000 if state is BreakerState.OPEN else 0.0
        calls, fails, slows = int(calls), int(fails), int(slows)
        return dataclasses.replace(
            m, state=state, state_code=state.code, window_calls=calls, window_failures=fails,
            window_slow_calls=slows, failure_rate=100.0 * fails / calls if calls else 0.0,
            slow_call_rate=100.0 * slows / calls if calls else 0.0,
            consecutive_failures=int(run) if state is BreakerState.CLOSED else 0, times_opened=int(opened),
            retry_after=retry)

    def reset(self) -> None:
        super().reset()
        self._force_shared(BreakerState.CLOSED)

    def _force_shared(self, new: BreakerState) -> None:
        try:
            self.store.sync_client[3](keys=self._keys, args=[new.value, self._record_args[-1].split(",")[0]])
        except Exception as exc:
            self._redis_failed(exc)
            return
        self._observe(new.value, "manual")
