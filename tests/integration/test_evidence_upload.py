"""`chaosdrill evidence --upload s3://…` against a real moto server on 127.0.0.1 (WORM archive, issue 10).

Every file of the pack is put with the policy's Object Lock retention (mode, days), each object is
read back and must carry it, and a delete of a locked version before expiry is refused. Bad input
(a bad URL, an unreachable endpoint, a bucket without Object Lock) is one line and a non-zero exit.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.env.ports import free_port
from tests.helpers.gen_runs import at, drill_run, fault_run

POLICY = """
[drills.db_outage]
every = "weekly"
[drills.dr_restore]
every = "monthly"
[approver]
name = "Head of infrastructure"
role = "approves"
[controls.C1]
framework = "test"
title = "backup"
asks = "a"
why = "w"
drills = ["dr_restore", "db_outage"]
[archive]
lock_mode = "{mode}"
retain_days = {days}
"""


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    assert host == "127.0.0.1"
    yield f"http://{host}:{port}"
    srv.stop()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    res = tmp_path_factory.mktemp("upl") / "results"
    for i, day in enumerate(["2026-10-01", "2026-10-08", "2026-10-15"]):
        fault_run(res, "db_outage", at(day), seed=i)
    drill_run(res, at("2026-10-05"), seed=9)
    return res


def _client(url: str):
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def evidence(tmp: Path, results: Path, upload: str, endpoint: str, *, mode: str = "COMPLIANCE", days: int = 3):
    policy = tmp / "policy.toml"
    policy.write_text(POLICY.format(mode=mode, days=days))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("AWS_PROFILE", None)
    return subprocess.run([sys.executable, "-m", "harness.cli_main", "evidence", "--since", "2026-10-01",
                           "--until", "2026-10-31", "--results", str(results), "--policy", str(policy),
                           "--out", str(tmp / "pack"), "--no-pdf", "--upload", upload],
                          capture_output=True, text=True, timeout=300, cwd=tmp, env=env)


def test_upload_puts_every_file_with_retention_and_deletes_are_refused(moto_url, results, tmp_path) -> None:
    s3 = _client(moto_url)
    s3.create_bucket(Bucket="dr-evidence", ObjectLockEnabledForBucket=True)
    before = datetime.now(UTC)
    proc = evidence(tmp_path, results, "s3://dr-evidence/audits/2026", moto_url, mode="COMPLIANCE", days=3)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pack = tmp_path / "pack"
    files = sorted(p.relative_to(pack).as_posix() for p in pack.rglob("*") if p.is_file())
    assert "manifest.sha256" in files and "evidence.html" in files and len(files) >= 7
    listed = s3.list_objects_v2(Bucket="dr-evidence", Prefix="audits/2026/pack/")
    keys = sorted(o["Key"].removeprefix("audits/2026/pack/") for o in listed["Contents"])
    assert keys == files
    for name in files:
        key = f"audits/2026/pack/{name}"
        head = s3.head_object(Bucket="dr-evidence", Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert before + timedelta(days=3) - timedelta(minutes=5) <= until <= datetime.now(UTC) + timedelta(days=3)
        assert s3.get_object(Bucket="dr-evidence", Key=key)["Body"].read() == (pack / name).read_bytes()
    assert "COMPLIANCE retention until" in proc.stderr and f"uploaded {len(files)} object(s)" in proc.stderr
    key = "audits/2026/pack/manifest.sha256"
    version = s3.head_object(Bucket="dr-evidence", Key=key)["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket="dr-evidence", Key=key, VersionId=version)
    assert s3.head_object(Bucket="dr-evidence", Key=key)["VersionId"] == version


def test_governance_mode_from_the_policy(moto_url, results, tmp_path) -> None:
    s3 = _client(moto_url)
    s3.create_bucket(Bucket="dr-evidence-gov", ObjectLockEnabledForBucket=True)
    proc = evidence(tmp_path, results, "s3://dr-evidence-gov", moto_url, mode="GOVERNANCE", days=1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert s3.head_object(Bucket="dr-evidence-gov", Key="pack/evidence.json")["ObjectLockMode"] == "GOVERNANCE"
    version = s3.head_object(Bucket="dr-evidence-gov", Key="pack/evidence.json")["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket="dr-evidence-gov", Key="pack/evidence.json", VersionId=version)


def _one_line_failure(proc: subprocess.CompletedProcess, code: int | None, *needles: str) -> None:
    assert proc.returncode != 0 and (code is None or proc.returncode == code), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
    for n in needles:
        assert n in errors[0], errors[0]


def test_bad_url_is_one_line_before_any_work(moto_url, results, tmp_path) -> None:
    proc = evidence(tmp_path, results, "s3://X/", moto_url)
    _one_line_failure(proc, 2, "--upload", "s3://bucket")
    assert not (tmp_path / "pack").exists(), "bad input is refused before the pack is built"
    proc = evidence(tmp_path, results, "https://example.invalid/b", moto_url)
    _one_line_failure(proc, 2, "--upload")


def test_unreachable_endpoint_is_one_line(results, tmp_path) -> None:
    proc = evidence(tmp_path, results, "s3://dr-evidence/x", f"http://127.0.0.1:{free_port()}")
    _one_line_failure(proc, 4, "upload failed", "127.0.0.1")


def test_bucket_without_object_lock_is_one_line(moto_url, results, tmp_path) -> None:
    s3 = _client(moto_url)
    s3.create_bucket(Bucket="plain-bucket")
    proc = evidence(tmp_path, results, "s3://plain-bucket/p", moto_url)
    _one_line_failure(proc, 4, "Object Lock", "plain-bucket")
    assert "Contents" not in s3.list_objects_v2(Bucket="plain-bucket"), "nothing is written without a lock"


def test_missing_bucket_is_one_line(moto_url, results, tmp_path) -> None:
    proc = evidence(tmp_path, results, "s3://never-made/p", moto_url)
    _one_line_failure(proc, 4, "never-made")
