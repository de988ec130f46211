"""network_partition: packets to PostgreSQL vanish (firewall), then the partition heals.

Uses an nftables table of its own on the loopback port the app connects to (needs root or
CAP_NET_ADMIN; refused with a clear message otherwise). `drop` makes clients hit their timeouts,
the hardest case for detection; `reject` resets connections at once.
"""

import pytest
from conftest import assert_passed, service_of

from harness.faults import PartitionPort
from harness.faults.firewall import has_net_admin


@pytest.mark.network_partition
def test_network_partition(chaos_env, chaos_config, chaos_experiment):
    mode = chaos_config.scenario("network_partition").partition_mode
    port = chaos_env.endpoints[service_of(chaos_env, "postgres")].port
    if not has_net_admin():
        pytest.skip("changing the firewall needs root or CAP_NET_ADMIN")
    assert_passed(chaos_experiment.run(
        "network_partition",
        lambda timeline: PartitionPort(port, mode=mode, timeline=timeline, allow=chaos_env.allow_list()),
        f"PostgreSQL port {port} partitioned ({mode}) by a firewall rule",
    ))
