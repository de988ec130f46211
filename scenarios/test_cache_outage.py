"""cache_outage: Redis goes away. Orders keep being served from PostgreSQL; health reports the outage.

Two ways to take it away (`scenarios.cache_outage.variants`; both unless the config sets it):
- network: the Redis proxy is disabled for the hold — the app's connections to Redis are cut and new
  ones refused — while Redis itself keeps running (and keeps its cache);
- kill: Redis is SIGKILLed and restarted empty after the hold (no persistence), so the cache must
  refill through normal reads.
Either way /health must come back to 200 by itself.
"""

import pytest
from conftest import assert_passed, kill_fault, proxy_of, selected_variant

from harness.faults import ProxyDown


@pytest.mark.cache_outage
@pytest.mark.parametrize("variant", ["network", "kill"])
def test_cache_outage(variant, request, chaos_env, chaos_config, chaos_experiment):
    selected_variant(chaos_config, "cache_outage", variant, default=("network", "kill"))
    allow = chaos_env.allow_list()
    if variant == "kill":
        fault = kill_fault(chaos_env, "redis", allow)
        what = "Redis killed (SIGKILL) and restarted empty after the hold"
    else:
        env = request.getfixturevalue("proxied_env")
        proxy = proxy_of(env, "redis")

        def fault(timeline):
            return ProxyDown(proxy, api=env.toxiproxy_url, timeline=timeline, allow=allow)
        what = "Redis unreachable: its proxy disabled (connections cut and refused)"
    assert_passed(chaos_experiment.run("cache_outage", fault, what))
