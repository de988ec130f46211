"""network_latency: the database answers, but slowly. Does the app degrade and come back?

Two latency toxics on the PostgreSQL proxy add `scenarios.network_latency.latency` to each direction
(upstream: every query is late reaching the server; downstream: every reply is late reaching the
app), so a round trip costs twice that. Health answers slower than the probe's latency threshold
count as bad samples.
"""

import pytest
from conftest import assert_passed, proxy_of

from harness.faults import FaultSet, LatencyToxic


@pytest.mark.network_latency
def test_network_latency(proxied_env, chaos_config, chaos_experiment):
    ms = int(chaos_config.scenario("network_latency").latency * 1000)
    allow = proxied_env.allow_list()
    proxy = proxy_of(proxied_env, "postgres")

    def fault(timeline):
        return FaultSet(*(LatencyToxic(proxy, latency=ms, stream=stream, api=proxied_env.toxiproxy_url,
                                       timeline=timeline, allow=allow)
                          for stream in ("upstream", "downstream")))

    assert_passed(chaos_experiment.run(
        "network_latency", fault, f"+{ms} ms each way between the app and PostgreSQL (latency toxics, both streams)",
    ))
