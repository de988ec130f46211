"""cache_outage: Redis dies. Orders keep being served from PostgreSQL; health reports the outage.

Redis is SIGKILLed and restarted empty after the hold (no persistence): the cache must refill
through normal reads, and /health must come back to 200 by itself.
"""

import pytest
from conftest import assert_passed

from harness.faults import KillProcess


@pytest.mark.cache_outage
def test_cache_outage(chaos_env, chaos_experiment):
    assert_passed(chaos_experiment.run(
        "cache_outage",
        lambda timeline: KillProcess(chaos_env.redis, timeline=timeline, allow=chaos_env.allow_list()),
        "Redis killed (SIGKILL) and restarted empty after the hold",
    ))
