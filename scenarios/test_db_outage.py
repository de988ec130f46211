"""db_outage: PostgreSQL goes away under load; how fast is it noticed, and how fast does the app heal?

Two ways to take it away (`scenarios.db_outage.variants`, default ["kill"]):
- kill: the server is SIGKILLed (postmaster and backends, as an OOM kill would) and restarted after
  the hold;
- network: its proxy is disabled for the hold — new connections are refused and open ones cut —
  while the server itself keeps running.
"""

import pytest
from conftest import assert_passed

from harness.faults import KillProcess, ProxyDown


@pytest.mark.db_outage
@pytest.mark.parametrize("variant", ["kill", "network"])
def test_db_outage(variant, chaos_env, chaos_config, chaos_experiment):
    if variant not in chaos_config.scenario("db_outage").variants:
        pytest.skip(f"variant {variant!r} not selected (scenarios.db_outage.variants)")
    allow = chaos_env.allow_list()
    if variant == "kill":
        def fault(timeline):
            return KillProcess(chaos_env.postgres, timeline=timeline, allow=allow)
        what = "PostgreSQL killed (SIGKILL of the whole server) and restarted after the hold"
    else:
        if chaos_env.toxiproxy is None:
            pytest.skip("the network variant needs proxies: set environment.local.proxy = true")

        def fault(timeline):
            return ProxyDown("postgres", api=chaos_env.toxiproxy_url, timeline=timeline, allow=allow)
        what = "PostgreSQL unreachable: its proxy disabled (connections refused and cut)"
    assert_passed(chaos_experiment.run("db_outage", fault, what))
