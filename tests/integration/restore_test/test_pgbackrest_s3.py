"""`chaosdrill restore-test` of a user's pgBackRest repository in S3 (moto on 127.0.0.1 behind stunnel for
pgBackRest's TLS): the repository is made with plain `pgbackrest` commands, the restore test passes
with its checks, and the bucket is only read (every object's ETag and SHA-256 equal before and after);
refused credentials and a wrong bucket are one line and a non-zero exit with nothing left running."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import boto3
import pytest

from harness.config import parse_config
from harness.drill.restore_test import RestoreTestRunner
from harness.env.local import load_state
from resilience.backup.repository import PgBackRestS3Repository, ReadOnlyRepositoryError
from resilience.backup.runner import chown_pg
from tests.integration.backup.conftest import s3_endpoint  # noqa: F401 - the session's moto + stunnel

from .conftest import config_for, make_user_cluster, seed

pytestmark = pytest.mark.timeout(300)
BUCKET, PATH = "user-backups", "/pg/repo"  # moto lives for the session: the bad-input test uses another bucket
GOOD_KEY, GOOD_SECRET = "AKIARESTORETESTKEY01", "rt-secret-0f3c9a7d"


def bucket_digest(client, bucket: str) -> dict[str, tuple[str, str]]:
    """key → (ETag, SHA-256) of every object in the bucket: the read-only proof."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            out[o["Key"]] = (o["ETag"], hashlib.sha256(body).hexdigest())
    return out


@pytest.fixture
def s3_cluster(s3_endpoint, scratch_dir):  # noqa: F811
    """A cluster archiving into an S3 pgBackRest repository made with plain pgbackrest (stanza-create, backup)."""
    client = boto3.client("s3", endpoint_url=s3_endpoint.http_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket=BUCKET)
    base = scratch_dir / "user"
    base.mkdir()
    chown_pg(base)
    ca = base / "ca.pem"
    shutil.copyfile(s3_endpoint.cert, ca)
    chown_pg(ca)
    opts = (f"repo1-type=s3\nrepo1-path={PATH}\nrepo1-s3-bucket={BUCKET}\nrepo1-s3-region=us-east-1\n"
            f"repo1-s3-endpoint=localhost\nrepo1-storage-port={s3_endpoint.tls_port}\nrepo1-s3-uri-style=path\n"
            f"repo1-storage-ca-file={ca}\nrepo1-s3-key=test\nrepo1-s3-key-secret=test")
    c = make_user_cluster(base, track_commit_timestamp=True, repo_options=opts)
    seed(c)
    c.pgbackrest("backup", "--type=full")
    c.psql("insert into orders(item) select 'late ' || g from generate_series(1, 100) g", db="shop")
    c.switch_wal()
    yield c, client
    c.stop()


def s3_source(endpoint, **over) -> dict:
    return {"kind": "s3", "endpoint": f"localhost:{endpoint.tls_port}", "endpoint_url": endpoint.http_url,
            "bucket": BUCKET, "prefix": PATH, "stanza": "main", "ca_file": str(endpoint.cert),
            "access_key": "env:RT_S3_KEY", "secret_key": "env:RT_S3_SECRET", **over}


def test_s3_repository_restore_tested_and_left_unchanged(s3_cluster, s3_endpoint, tmp_path, monkeypatch):  # noqa: F811
    cluster, client = s3_cluster
    monkeypatch.setenv("RT_S3_KEY", GOOD_KEY)  # moto without its auth check takes any key; a secret is scrubbed
    monkeypatch.setenv("RT_S3_SECRET", GOOD_SECRET)  # from every output, so not a common word like "test"
    before = bucket_digest(client, BUCKET)
    assert any(k.startswith("pg/repo/backup/main/") for k in before)
    cfg = parse_config(config_for(tmp_path, {
        "pgbackrest": s3_source(s3_endpoint),
        "checks": [{"name": "orders present", "database": "shop", "sql": "select count(*) from orders",
                    "expect": "= 2100"}]}), "test")
    outcome = RestoreTestRunner(cfg).run()
    checks = {c["name"]: c for c in outcome.checks}
    assert outcome.verdict.value == "passed", outcome.checks
    assert checks["repository verified (pgbackrest verify, info .copy twins, WAL continuity, the backup's WAL "
                  "range)"]["passed"]
    assert checks["WAL replay ended where the archive ends"]["passed"]
    assert checks["SQL: orders present"]["passed"]  # the 100 rows after the backup replayed from S3
    assert any(n.startswith("pg_amcheck") and c["passed"] for n, c in checks.items())
    assert outcome.measurements.rpo_strength == "strong"
    assert bucket_digest(client, BUCKET) == before  # only read: every ETag and SHA-256 unchanged
    assert not [r for r in load_state() if r["id"] == outcome.env_id]

    # the repository class itself refuses every write
    repo = PgBackRestS3Repository(endpoint="localhost", port=s3_endpoint.tls_port, bucket=BUCKET, path=PATH,
                                  access_key="test", secret_key="test", ca_file=str(s3_endpoint.cert),
                                  endpoint_url=s3_endpoint.http_url)
    keys = repo.list("pgbackrest/backup/main/")
    assert "pgbackrest/backup/main/backup.info" in keys and repo.exists("pgbackrest/backup/main/backup.info")
    assert repo.pgbackrest_options()["repo1-path"] == PATH
    for write in (lambda: repo.put_bytes("pgbackrest/x", b"x"), lambda: repo.delete("pgbackrest/backup/main/backup.info"),
                  lambda: repo.put_file("pgbackrest/y", s3_endpoint.cert)):
        with pytest.raises(ReadOnlyRepositoryError, match="read-only"):
            write()
    assert not repo.exists("pgbackrest/x")
    assert bucket_digest(client, BUCKET) == before


def toml_of(src: dict) -> str:
    lines = [f'{k} = "{v}"' for k, v in src.items()]
    return "[restore_test.pgbackrest]\n" + "\n".join(lines) + "\n"


def test_bad_credentials_and_wrong_bucket_are_one_line(s3_endpoint, tmp_path, monkeypatch):  # noqa: F811
    from moto import settings

    boto3.client("s3", endpoint_url=s3_endpoint.http_url, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket="other-user-backups")

    before_envs = {r["id"] for r in load_state()}
    cases = [({"bucket": "no-such-bucket"}, {"RT_S3_KEY": GOOD_KEY, "RT_S3_SECRET": GOOD_SECRET}, "does not exist"),
             ({"bucket": "other-user-backups"}, {"RT_S3_KEY": "AKIAWRONGKEY", "RT_S3_SECRET": "wrong-secret"}, "credentials refused")]
    for i, (over, env, words) in enumerate(cases):
        if i == 1:
            monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now checks every key
        (tmp_path / "chaosdrill.toml").write_text(toml_of(s3_source(s3_endpoint, **over)))
        proc = subprocess.run([sys.executable, "-m", "harness.cli_main", "restore-test", "-c",
                               str(tmp_path / "chaosdrill.toml"), "--results", str(tmp_path / "results")],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr
        assert "wrong-secret" not in proc.stderr + proc.stdout
    assert {r["id"] for r in load_state()} <= before_envs
