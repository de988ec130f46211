"""Streaming replica: create, lag alert and clear, resync, promote after the primary dies."""

from __future__ import annotations

import time

import pytest

from resilience.backup import ReplicationError
from resilience.backup.replication import LagMonitor, Replica


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_replica_lag_alert_resync_and_promote(pg_server, scratch_dir):
    pg_server.psql("create table t(i int); insert into t select generate_series(1, 100)")
    replica = Replica.create(pg_server.port, scratch_dir / "replica", name="r1")
    try:
        assert replica.in_recovery() and replica.port != pg_server.port
        wait_for(lambda: replica.cluster.query("select count(*) from t")[0][0] == 100)

        alerts, clears = [], []
        mon = LagMonitor(replica, max_bytes=1 << 20, max_seconds=30, on_alert=alerts.append, on_clear=clears.append)
        assert mon.check() is None
        s = mon.samples[-1]
        assert s.state == "streaming" and s.bytes is not None and s.bytes < 1 << 20

        replica.cluster.query("select pg_wal_replay_pause()")
        pg_server.psql("insert into t select generate_series(1, 200000)")  # ~7 MB of WAL the replica won't replay
        alert = mon.check()
        assert alert is not None and "bytes behind" in alert.reason and alerts == [alert]
        incident_alert = alert.to_alert()
        assert incident_alert.dedup_key == "replication-lag:r1" and incident_alert.context["bytes"] > 1 << 20
        assert mon.check() is None and len(alerts) == 1  # one alert per breach
        replica.cluster.query("select pg_wal_replay_resume()")
        wait_for(lambda: mon.check() is None and clears)

        took = replica.resync()
        assert took > 0 and replica.in_recovery()
        wait_for(lambda: replica.cluster.query("select count(*) from t")[0][0] == 200100)

        with mon:  # threaded monitor keeps sampling while the primary dies
            pg_server.kill()
            seconds = replica.promote()
            time.sleep(0.6)
        assert 0 < seconds < 30 and not replica.in_recovery()
        replica.cluster.query("insert into t values (-1)")
        assert any(s.error and "primary unreachable" in s.error for s in mon.samples)
        with pytest.raises(ReplicationError, match="not a standby"):
            replica.resync()
    finally:
        replica.stop("immediate")


def test_replica_refuses_non_empty_dir(pg_server, scratch_dir):
    from resilience.backup import RestoreTargetNotEmpty

    with pytest.raises(RestoreTargetNotEmpty):
        Replica.create(pg_server.port, pg_server.data)
