"""Backup → disaster → restore into fresh directories, against real PostgreSQL, pgBackRest and Redis."""

from __future__ import annotations

import redis

from resilience.backup import BackupType, RestoreTargets


def test_full_incr_diff_then_restore_latest_into_fresh_dirs(stack):
    events = []
    mgr = stack.manager(on_step=lambda name, phase, t_ns: events.append((name, phase, t_ns)))
    full = mgr.backup("full")
    stack.pg.psql("insert into canary select g, 'incr' from generate_series(5001, 6000) g")
    (stack.files / "a.txt").write_text("alpha v2\n")
    incr = mgr.backup(BackupType.INCR)
    (stack.files / "c.txt").write_text("new\n")
    (stack.files / "sub" / "b.bin").unlink()
    diff = mgr.backup("diff")
    assert incr.parent == full.id and diff.parent == full.id
    assert incr.part("files:uploads").meta["changed"] == 1
    assert diff.part("files:uploads").meta == diff.part("files:uploads").meta | {"changed": 2, "deleted": 1}
    assert diff.lsn_range and diff.wal_range
    stack.pg.psql("insert into canary select g, 'after' from generate_series(6001, 6010) g")
    stack.pg.psql("select pg_switch_wal()")

    report = mgr.verify()
    assert report.ok, report.problems
    assert report.pgbackrest_verified and report.wal_segments_checked > 0

    stack.pg.stop("immediate")  # disaster
    t = stack.base / "restored"
    res = mgr.restore("latest", RestoreTargets(pg_data=t / "pg", redis_dir=t / "redis", files_dir=t / "files",
                                               config_dir=t / "config"),
                      push_wal_from=stack.pg.data)
    try:
        assert res.set.id == diff.id
        assert res.postgres.query("select count(*), max(seq) from canary")[0] == (6010, 6010)
        assert res.redis.keys == 1000
        assert redis.Redis(port=res.redis.port).get("k7") == b"7"
        restored = res.files["files:uploads"]
        assert (restored / "a.txt").read_text() == "alpha v2\n"
        assert (restored / "c.txt").exists() and not (restored / "sub" / "b.bin").exists()
        assert (res.config / str(stack.config).lstrip("/")).read_text() == "[app]\nport = 8080\n"
        names = [s.name for s in res.steps]
        assert names[:3] == ["postgres.push_wal", "postgres.restore", "postgres.start_replay"]
        assert all(s.duration_s >= 0 for s in res.steps)
        assert [e[:2] for e in events[:2]] == [("postgres.push_wal", "start"), ("postgres.push_wal", "end")]
        assert len(events) == 2 * len(res.steps)
    finally:
        res.stop()
    only = mgr.restore(diff.id, RestoreTargets(redis_dir=t / "redis-only"), parts=["redis"])
    try:
        assert [s.name for s in only.steps] == ["redis.fetch_start"] and only.postgres is None
        assert only.to_dict()["redis"] == only.redis.url
    finally:
        only.stop()
