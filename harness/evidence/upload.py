"""Archive an evidence pack to WORM storage: S3 with Object Lock retention, checked afterwards.

Every file of the pack (manifest and sign-off included) is put under `s3://bucket/prefix/<pack
name>/` with `ObjectLockMode` and `ObjectLockRetainUntilDate` from the policy's `[archive]`
(mode, retain_days); then each object's retention is read back (HEAD: mode, retain-until) and
the upload fails naming every object that does not carry it. The bucket must have Object Lock
enabled (it can only be turned on when a bucket is created; `create_bucket=True` does that for a
new bucket). Credentials are boto3's usual ones (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a
profile, an instance role); the endpoint is `[archive].endpoint_url`, else $AWS_ENDPOINT_URL,
else AWS.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.errors import ConfigError, HarnessError
from harness.evidence.policy import Archive

_S3_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")


@dataclass
class UploadReport:
    url: str
    objects: list[str] = field(default_factory=list)
    retain_until: datetime | None = None
    mode: str = ""


def parse_s3_url(url: str) -> tuple[str, str]:
    m = _S3_URL.match(url.strip())
    if not m:
        raise ConfigError(f"--upload: {url[:80]!r} is not an S3 URL; allowed: s3://bucket or s3://bucket/prefix")
    return m.group(1), (m.group(2) or "").strip("/")


def _client(archive: Archive, endpoint_url: str | None):
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or archive.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint, region_name=archive.region,
                        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
                                      s3={"addressing_style": "path"}))


def _check_lock(client, bucket: str, url: str) -> None:
    """The bucket exists and has Object Lock enabled; otherwise nothing is written (one line naming it)."""
    from botocore.exceptions import ClientError

    try:
        conf = client.get_object_lock_configuration(Bucket=bucket).get("ObjectLockConfiguration", {})
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise HarnessError(f"{url}: upload failed: bucket {bucket} does not exist (create it with Object Lock "
                               "enabled)") from None
        if code == "ObjectLockConfigurationNotFoundError":
            conf = {}
        else:
            raise
    if conf.get("ObjectLockEnabled") != "Enabled":
        raise HarnessError(f"{url}: upload failed: bucket {bucket} does not have Object Lock enabled (it can only be "
                           "turned on when a bucket is created); nothing was uploaded")


def upload_pack(pack: Path, url: str, archive: Archive, *, endpoint_url: str | None = None,
                create_bucket: bool = False, now: datetime | None = None) -> UploadReport:
    """Put every file of `pack` under the URL with Object Lock retention, then check each object carries it."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_s3_url(url)
    pack = Path(pack)
    base = f"{prefix}/{pack.name}" if prefix else pack.name
    until = (now or datetime.now(UTC)) + timedelta(days=archive.retain_days)
    until = until.replace(microsecond=0)
    client = _client(archive, endpoint_url)
    report = UploadReport(f"s3://{bucket}/{base}/", retain_until=until, mode=archive.lock_mode)
    try:
        if create_bucket:
            try:
                client.head_bucket(Bucket=bucket)
            except ClientError:
                client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        _check_lock(client, bucket, url)
        files = sorted(p for p in pack.rglob("*") if p.is_file())
        for path in files:
            key = f"{base}/{path.relative_to(pack).as_posix()}"
            data = path.read_bytes()
            client.put_object(Bucket=bucket, Key=key, Body=data, ObjectLockMode=archive.lock_mode,
                              ObjectLockRetainUntilDate=until, ChecksumAlgorithm="SHA256",
                              Metadata={"sha256": hashlib.sha256(data).hexdigest()})
            report.objects.append(key)
        missing = []
        for key in report.objects:  # read back: each object must carry the retention asked for
            head = client.head_object(Bucket=bucket, Key=key)  # carries the object's retention (mode, until)
            got_until = head.get("ObjectLockRetainUntilDate")
            if head.get("ObjectLockMode") != archive.lock_mode or got_until is None or got_until < until - timedelta(seconds=1):
                missing.append(key)
        if missing:
            raise HarnessError(f"{url}: {len(missing)} object(s) without the {archive.lock_mode} retention asked for "
                               f"(is Object Lock enabled on bucket {bucket}?): {', '.join(missing[:5])}")
    except ClientError as exc:
        err = exc.response.get("Error", {})
        hint = " (the bucket needs Object Lock enabled)" if "lock" in str(err.get("Message", "")).lower() \
            or err.get("Code") == "InvalidRequest" else ""
        raise HarnessError(f"{url}: upload failed: {err.get('Code', '')} {err.get('Message', '')}{hint}".strip()) from None
    except (BotoCoreError, OSError) as exc:
        raise HarnessError(f"{url}: upload failed: {(str(exc).splitlines() or [type(exc).__name__])[0][:200]}") from None
    return report
