"""Point-in-time restores (time, LSN, immediate) and the logical pg_dump engine."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from resilience.backup import BackupManager, PgDumpEngine, RestoreTargetNotEmpty, RestoreTargets
from resilience.backup.engines.pgbackrest import format_target_time


def test_target_time_format():
    when = datetime(2026, 11, 22, 5, 14, 29, 768123, tzinfo=UTC)
    assert format_target_time(when) == "2026-11-22 05:14:29.768+00"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_target_time(datetime(2026, 1, 1))


def test_restore_to_time_to_lsn_and_immediate(stack):
    mgr = BackupManager(stack.repo, pg=stack.br)
    s = mgr.backup("full")
    stack.pg.psql("insert into canary select g, 'b1' from generate_series(10001, 10100) g")
    lsn = stack.pg.psql("select pg_current_wal_lsn()")
    time.sleep(0.3)
    cut = datetime.now(UTC)
    time.sleep(0.3)
    stack.pg.psql("insert into canary select g, 'b2' from generate_series(10101, 10200) g")
    seg = stack.br.archive_now()
    assert seg == stack.pg.psql("select last_archived_wal from pg_stat_archiver")

    def count(res) -> int:
        try:
            return res.postgres.query("select count(*) from canary")[0][0]
        finally:
            res.stop()

    assert count(mgr.restore("latest", RestoreTargets(pg_data=stack.base / "t"), target_time=cut)) == 5100
    assert count(mgr.restore(s.id, RestoreTargets(pg_data=stack.base / "l"), target_lsn=lsn)) == 5100
    assert count(mgr.restore(s.id, RestoreTargets(pg_data=stack.base / "i"), recovery="immediate")) == 5000
    assert count(mgr.restore(s.id, RestoreTargets(pg_data=stack.base / "e"))) == 5200


def test_pg_dump_into_a_fresh_database(pg_server, scratch_dir):
    from resilience.backup import LocalRepository

    pg_server.psql("create table t(i int primary key); insert into t select generate_series(1, 2000)")
    repo = LocalRepository(scratch_dir / "repo")
    repo.init()
    mgr = BackupManager(repo, pg=PgDumpEngine(port=pg_server.port))
    s = mgr.backup("full")
    assert s.part("postgres").engine == "pg_dump" and s.size > 0
    assert mgr.verify().ok
    res = mgr.restore(s.id, RestoreTargets(pg_dump_port=pg_server.port, pg_dump_dbname="restored"))
    assert pg_server.psql("select count(*) from t", db="restored") == "2000"
    assert [st.name for st in res.steps] == ["postgres.pg_restore"]
    with pytest.raises(RestoreTargetNotEmpty, match="'restored' already exists"):
        mgr.restore(s.id, RestoreTargets(pg_dump_port=pg_server.port, pg_dump_dbname="restored"))
