"""Object Lock for pgBackRest's own objects ([drill.repository] lock_mode/lock_days, moto + stunnel).

init() sets the bucket's default retention, so the objects pgBackRest writes itself (backup.info,
backup files, WAL segments), which carry no retention headers, are locked too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from resilience.backup import BackupManager, RepositoryError

from .conftest import make_archiving_pg


def test_pgbackrest_backup_and_wal_objects_carry_retention(s3_endpoint, scratch_dir):
    repo = s3_endpoint.repo("pgbr-lock-bucket", prefix="drill", lock_mode="GOVERNANCE", lock_days=2)
    repo.init()
    conf = repo.client.get_object_lock_configuration(Bucket="pgbr-lock-bucket")["ObjectLockConfiguration"]
    rule = conf["Rule"]["DefaultRetention"]
    assert (rule["Mode"], rule["Days"]) == ("GOVERNANCE", 2)
    pg, br = make_archiving_pg(scratch_dir, repo)
    try:
        mgr = BackupManager(repo, pg=br)
        mgr.setup()
        pg.psql("create table t(i int); insert into t select generate_series(1, 1000)")
        mgr.backup("full")
        pg.psql("select pg_switch_wal()")
    finally:
        pg.stop("immediate")
    keys = repo.list("pgbackrest")
    info = [k for k in keys if k.endswith("/backup.info")]
    wal = [k for k in keys if "/archive/" in k and k.rsplit("/", 1)[-1][:24].isalnum() and "-" in k.rsplit("/", 1)[-1]]
    assert info and wal, keys
    for key in (info[0], wal[0]):
        head = repo.client.head_object(Bucket="pgbr-lock-bucket", Key=f"drill/{key}")
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC), key
        with pytest.raises(Exception, match="AccessDenied"):
            repo.client.delete_object(Bucket="pgbr-lock-bucket", Key=f"drill/{key}", VersionId=head["VersionId"])


def test_lock_on_a_bucket_without_object_lock_is_refused(s3_endpoint):
    s3_endpoint.repo("plain-pgbr-bucket").init()  # created without Object Lock
    locked = s3_endpoint.repo("plain-pgbr-bucket", lock_mode="COMPLIANCE", lock_days=1)
    with pytest.raises(RepositoryError, match="Object Lock is not enabled") as exc:
        locked.init()
    assert "\n" not in str(exc.value)
