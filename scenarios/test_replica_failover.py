"""replica_failover: the primary dies; a streaming replica is promoted and the app repointed to it.

A canary writes to the primary every 100 ms while a replica streams its WAL (pg_basebackup -R, lag
watched). The primary is SIGKILLed, the replica promoted, and a new app instance pointed at it.
Failover time (kill → promoted, verified and serving) is judged as RTO, data lost as RPO and rows lost.
"""

import pytest
from conftest import assert_passed


@pytest.mark.replica_failover
def test_replica_failover(chaos_failover):
    assert_passed(chaos_failover.run())
