"""network_latency: the database answers, but slowly. Does the app degrade and come back?

A latency toxic adds `scenarios.network_latency.latency` to every reply from PostgreSQL (through
its proxy). Health answers slower than the probe's latency threshold count as bad samples.
"""

import pytest
from conftest import assert_passed

from harness.faults import LatencyToxic


@pytest.mark.network_latency
def test_network_latency(proxied_env, chaos_config, chaos_experiment):
    ms = int(chaos_config.scenario("network_latency").latency * 1000)
    assert_passed(chaos_experiment.run(
        "network_latency",
        lambda timeline: LatencyToxic("postgres", latency=ms, stream="downstream", api=proxied_env.toxiproxy_url,
                                      timeline=timeline, allow=proxied_env.allow_list()),
        f"+{ms} ms on every PostgreSQL reply (latency toxic, downstream)",
    ))
