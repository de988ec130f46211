"""cache_outage: Redis goes away. Orders keep being served from PostgreSQL; health reports the outage.

Two ways to take it away (`scenarios.cache_outage.variants`; both unless the config sets it):
- network: the Redis proxy is disabled for the hold — the app's connections to Redis are cut and new
  ones refused — while Redis itself keeps running (and keeps its cache);
- kill: Redis is SIGKILLed and restarted empty after the hold (no persistence), so the cache must
  refill through normal reads.
Either way /health must come back to 200 by itself.
"""

import pytest
from conftest import assert_passed, outage_fault, selected_variant


@pytest.fixture
def chaos_case_selected(variant, chaos_config):
    selected_variant(chaos_config, "cache_outage", variant, default=("network", "kill"))


@pytest.mark.cache_outage
@pytest.mark.parametrize("variant", ["network", "kill"])
def test_cache_outage(variant, request, chaos_env, chaos_config, chaos_experiment):
    fault = outage_fault(request, chaos_env, "redis", variant, chaos_env.allow_list())
    what = {"kill": "Redis killed (SIGKILL) and restarted empty after the hold",
            "network": "Redis unreachable: its proxy disabled (connections cut and refused)"}[variant]
    assert_passed(chaos_experiment.run("cache_outage", fault, what))
