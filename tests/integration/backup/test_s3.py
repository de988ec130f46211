"""S3 repositories on a real moto server: objects, object lock, pgBackRest through stunnel, bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from harness.env.ports import free_port
from resilience.backup import (
    BackupManager,
    RepositoryAuthError,
    RepositoryMissing,
    RepositoryUnreachable,
    RestoreTargets,
    S3Repository,
)

from .conftest import make_archiving_pg


def test_objects_round_trip_with_checksums(s3_endpoint, tmp_path):
    repo = s3_endpoint.repo("rt-bucket", prefix="p1")
    repo.init()
    ref = repo.put_bytes("sets/a/b.bin", b"hello")
    assert ref.size == 5 and repo.sha256("sets/a/b.bin") == ref.sha256
    assert repo.list("sets") == ["sets/a/b.bin"] and repo.exists("sets/a/b.bin")
    repo.get_file("sets/a/b.bin", tmp_path / "x")
    assert (tmp_path / "x").read_bytes() == b"hello"
    repo.delete("sets/a/b.bin")
    with pytest.raises(RepositoryMissing, match="object sets/a/b.bin is missing"):
        repo.get_bytes("sets/a/b.bin")


def test_object_lock_retention_blocks_deletion(s3_endpoint):
    repo = s3_endpoint.repo("worm-bucket", lock_mode="COMPLIANCE", lock_days=1)
    repo.init()
    repo.put_bytes("catalog.json", b"{}")
    head = repo.client.head_object(Bucket="worm-bucket", Key="chaosdrill/catalog.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC)
    version = head["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        repo.client.delete_object(Bucket="worm-bucket", Key="chaosdrill/catalog.json", VersionId=version)


def test_unreachable_endpoint_is_one_line(tmp_path):
    repo = S3Repository(endpoint_url=f"http://127.0.0.1:{free_port()}", bucket="b-x", access_key="a", secret_key="b",
                        timeout_s=1)
    with pytest.raises(RepositoryUnreachable, match="endpoint unreachable") as exc:
        BackupManager(repo).restore("latest", RestoreTargets(pg_data=tmp_path / "x"))
    assert "\n" not in str(exc.value)


def test_refused_credentials_are_one_line(s3_endpoint, monkeypatch):
    from moto import settings

    s3_endpoint.repo("auth-bucket").init()
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now checks every key
    bad = S3Repository(endpoint_url=s3_endpoint.http_url, bucket="auth-bucket", access_key="AKIAWRONG",
                       secret_key="nope")
    with pytest.raises(RepositoryAuthError, match="credentials refused") as exc:
        bad.check()
    assert "\n" not in str(exc.value)


def test_missing_bucket_and_catalog(s3_endpoint, tmp_path):
    with pytest.raises(RepositoryMissing, match="does not exist|catalog.json is missing"):
        BackupManager(s3_endpoint.repo("never-created")).restore("latest", RestoreTargets(pg_data=tmp_path / "x"))
    empty = s3_endpoint.repo("empty-bucket")
    empty.init()
    with pytest.raises(RepositoryMissing, match=r"the backup catalog catalog\.json is missing \(the repository is empty\)"):
        BackupManager(empty).restore("latest", RestoreTargets(pg_data=tmp_path / "x"))


def test_pgbackrest_backup_and_restore_through_s3(s3_endpoint, scratch_dir):
    repo = s3_endpoint.repo("pgbr-bucket", prefix="drill")
    repo.init()
    pg, br = make_archiving_pg(scratch_dir, repo)
    try:
        mgr = BackupManager(repo, pg=br)
        mgr.setup()
        pg.psql("create table t(i int); insert into t select generate_series(1, 1000)")
        s = mgr.backup("full")
        assert any(k.startswith("pgbackrest/backup/drill/") for k in repo.list("pgbackrest"))
        report = mgr.verify(s.id)
        assert report.ok, report.problems
        pg.psql("insert into t select generate_series(1001, 1500)")
        pg.psql("select pg_switch_wal()")
        pg.stop("immediate")
        res = mgr.restore(s.id, RestoreTargets(pg_data=scratch_dir / "restored"), push_wal_from=pg.data)
        try:
            assert res.pushed_wal  # the crashed primary's last segment: without it the 500 rows are lost
            assert res.postgres.query("select count(*) from t")[0][0] == 1500
        finally:
            res.stop()
    finally:
        pg.stop("immediate")
