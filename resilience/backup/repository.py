"""Where backups live: a local directory or an S3 bucket, behind one small protocol.

Backup engines write objects (`put_file`/`put_bytes`) and get back an ObjectRef with the
SHA-256 computed while writing; verification reads them back and recomputes it. pgBackRest
keeps its own repository under the same root (`pgbackrest/`), configured by
`pgbackrest_options()`, so one Repository holds every part of a backup set.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from resilience.backup.catalog import ObjectRef
from resilience.backup.errors import (
    RepositoryAuthError,
    RepositoryError,
    RepositoryMissing,
    RepositoryUnreachable,
)
from resilience.backup.runner import chown_pg

PGBACKREST_DIR = "pgbackrest"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex digest, size) of a file, read in 1 MiB chunks."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


@runtime_checkable
class Repository(Protocol):
    """Object storage for backup sets; keys are '/'-separated relative paths."""

    def describe(self) -> str: ...
    def init(self) -> None: ...
    def check(self) -> None: ...
    def put_file(self, key: str, path: Path) -> ObjectRef: ...
    def put_bytes(self, key: str, data: bytes) -> ObjectRef: ...
    def get_file(self, key: str, dest: Path) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def sha256(self, key: str) -> str: ...
    def pgbackrest_options(self) -> dict[str, str]: ...


def _clean_key(key: str) -> str:
    parts = [p for p in key.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"invalid repository key {key!r}")
    return "/".join(parts)


class LocalRepository:
    """A directory; the default. `init()` creates it, `check()` refuses a missing one."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()

    def describe(self) -> str:
        return f"local repository {self.root}"

    def __repr__(self) -> str:
        return f"LocalRepository({str(self.root)!r})"

    def init(self) -> None:
        (self.root / PGBACKREST_DIR).mkdir(parents=True, exist_ok=True)
        chown_pg(self.root / PGBACKREST_DIR)

    def check(self) -> None:
        if not self.root.is_dir():
            raise RepositoryMissing(f"{self.describe()} does not exist")

    def _path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def put_file(self, key: str, path: Path) -> ObjectRef:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        digest, size = sha256_file(dest)
        return ObjectRef(_clean_key(key), size, digest)

    def put_bytes(self, key: str, data: bytes) -> ObjectRef:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)  # the catalog is never seen half-written
        return ObjectRef(_clean_key(key), len(data), hashlib.sha256(data).hexdigest())

    def _existing(self, key: str) -> Path:
        p = self._path(key)
        if not p.is_file():
            self.check()
            raise RepositoryMissing(f"{self.describe()}: object {key} is missing")
        return p

    def get_file(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._existing(key), dest)

    def get_bytes(self, key: str) -> bytes:
        return self._existing(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def delete(self, key: str) -> None:
        p = self._path(key)
        p.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # prune empty directories up to the root
            for parent in p.parents:
                if parent == self.root:
                    break
                parent.rmdir()

    def sha256(self, key: str) -> str:
        return sha256_file(self._existing(key))[0]

    def pgbackrest_options(self) -> dict[str, str]:
        return {"repo1-type": "posix", "repo1-path": str(self.root / PGBACKREST_DIR)}


class ReadOnlyRepositoryError(RepositoryError):
    """Something tried to write into a repository opened read-only (a user's own backups)."""


class PgBackRestLocalRepository(LocalRepository):
    """A user's own pgBackRest repository (its `repo1-path`), opened read-only.

    Keys keep the `pgbackrest/` prefix every other repository uses, so the one verification path
    (`verify_stanza`) reads it unchanged: `pgbackrest/backup/<stanza>/…` is `<root>/backup/<stanza>/…`.
    Writes are refused; `cipher_pass` is the repository's passphrase (aes-256-cbc), handed to
    pgBackRest only through its 0600 config file.
    """

    def __init__(self, root: Path | str, cipher_pass: str | None = None) -> None:
        super().__init__(root)
        self.cipher_pass = cipher_pass

    def describe(self) -> str:
        return f"pgBackRest repository {self.root}"

    def __repr__(self) -> str:
        return f"PgBackRestLocalRepository({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        k = _clean_key(key)
        if k == PGBACKREST_DIR or k.startswith(PGBACKREST_DIR + "/"):
            return self.root / k[len(PGBACKREST_DIR) + 1:] if k != PGBACKREST_DIR else self.root
        return self.root / ".chaosdrill-not-a-pgbackrest-key" / k  # never exists

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(f"{PGBACKREST_DIR}/{p.relative_to(self.root)}" for p in base.rglob("*") if p.is_file())

    def init(self) -> None:
        self.check()  # never created here: it is the user's

    def check(self) -> None:
        super().check()
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise RepositoryMissing(f"{self.describe()} is not readable")

    def _refuse(self, *_args: object) -> None:
        raise ReadOnlyRepositoryError(f"{self.describe()} is read-only: chaosdrill never writes into it")

    put_file = put_bytes = delete = _refuse  # type: ignore[assignment]

    def pgbackrest_options(self) -> dict[str, str]:
        opts = {"repo1-type": "posix", "repo1-path": str(self.root)}
        if self.cipher_pass:
            opts |= {"repo1-cipher-type": "aes-256-cbc", "repo1-cipher-pass": self.cipher_pass}
        return opts


@dataclass(frozen=True)
class PgBackRestS3:
    """How pgBackRest reaches the same bucket: it insists on TLS and checks the DNS name.

    With moto behind stunnel (docs/recipes.md, section 4): host="localhost", port=<stunnel port>,
    ca_file=<self-signed cert>.
    """

    host: str = "localhost"
    port: int = 443
    ca_file: str | None = None
    verify_tls: bool = True


class S3Repository:
    """An S3 bucket + prefix through boto3; optional object-lock retention on every object."""

    def __init__(self, *, endpoint_url: str, bucket: str, prefix: str = "chaosdrill",
                 access_key: str, secret_key: str, region: str = "us-east-1",
                 verify: bool | str = True, lock_mode: str | None = None, lock_days: int | None = None,
                 pgbackrest: PgBackRestS3 | None = None, timeout_s: float = 5.0) -> None:
        import boto3
        from botocore.config import Config

        if lock_mode not in (None, "GOVERNANCE", "COMPLIANCE"):
            raise ValueError(f"lock_mode must be one of: GOVERNANCE, COMPLIANCE; got {lock_mode!r}")
        if (lock_mode is None) != (lock_days is None):
            raise ValueError("object-lock retention needs both lock_mode and lock_days")
        self.endpoint_url, self.bucket, self.prefix = endpoint_url, bucket, prefix.strip("/")
        self.region, self.lock_mode, self.lock_days = region, lock_mode, lock_days
        self.access_key, self.secret_key = access_key, secret_key
        self.pgbackrest = pgbackrest
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region, verify=verify,
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=Config(connect_timeout=timeout_s, read_timeout=max(timeout_s, 30),
                          retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"}))

    def describe(self) -> str:
        return f"S3 repository s3://{self.bucket}/{self.prefix} at {self.endpoint_url}"

    def __repr__(self) -> str:
        return f"S3Repository(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_clean_key(key)}" if self.prefix else _clean_key(key)

    @contextlib.contextmanager
    def _mapped(self, what: str, key: str | None = None) -> Iterator[None]:
        """Translate botocore's errors into one-line RepositoryErrors at this one boundary."""
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            yield
        except EndpointConnectionError as exc:
            raise RepositoryUnreachable(f"{self.describe()}: endpoint unreachable ({what})") from exc
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code, status = err.get("Code", ""), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId",
                        "AccessDenied", "403") or status == 403:
                raise RepositoryAuthError(f"{self.describe()}: credentials refused ({code or status}) "
                                          f"on {what}") from exc
            if code == "NoSuchBucket" or (key is None and code in ("404", "NotFound")):
                raise RepositoryMissing(f"{self.describe()}: bucket {self.bucket!r} does not exist") from exc
            if code in ("NoSuchKey", "404", "NotFound"):
                raise RepositoryMissing(f"{self.describe()}: object {key} is missing") from exc
            raise RepositoryError(self._scrub(f"{self.describe()}: {what} failed: {code} {err.get('Message', '')}"
                                              .strip())) from exc
        except BotoCoreError as exc:
            raise RepositoryUnreachable(self._scrub(f"{self.describe()}: {what} failed: {exc}")) from exc

    def _scrub(self, text: str) -> str:
        """An error line without the keys (an S3 error may quote the access key id)."""
        for secret in sorted((self.access_key, self.secret_key), key=len, reverse=True):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "**********")
        return text

    def init(self) -> None:
        """Create the bucket if it is missing (with object lock when retention is asked for)."""
        with self._mapped("head_bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
                exists = True
            except Exception as exc:  # noqa: BLE001 - re-raised unless it is "no such bucket"
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code not in ("404", "NoSuchBucket", "NotFound"):
                    raise
                exists = False
        if not exists:
            with self._mapped("create_bucket"):
                kwargs = {"ObjectLockEnabledForBucket": True} if self.lock_mode else {}
                self.client.create_bucket(Bucket=self.bucket, **kwargs)
        if self.lock_mode:
            self._default_retention()

    def _default_retention(self) -> None:
        """The bucket's default Object Lock retention = (lock_mode, lock_days), so every object written
        without its own retention (pgBackRest's backup.info, backup files and WAL segments) is locked too.
        A bucket without Object Lock cannot honour it (S3 turns the lock on only at creation): refused."""
        with self._mapped("get_object_lock_configuration"):
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket).get("ObjectLockConfiguration", {})
            except Exception as exc:  # noqa: BLE001 - re-raised unless the bucket has no lock configuration
                if getattr(exc, "response", {}).get("Error", {}).get("Code") != "ObjectLockConfigurationNotFoundError":
                    raise
                conf = {}
        if conf.get("ObjectLockEnabled") != "Enabled":
            raise RepositoryError(f"s3://{self.bucket}: Object Lock is not enabled on this bucket, so lock_mode/"
                                  "lock_days cannot be applied (S3 enables it only when a bucket is created: use a new "
                                  "bucket, which chaosdrill creates with Object Lock)")
        want = {"Mode": self.lock_mode, "Days": self.lock_days}
        rule = conf.get("Rule", {}).get("DefaultRetention", {})
        if (rule.get("Mode"), rule.get("Days")) == (self.lock_mode, self.lock_days):
            return
        with self._mapped("put_object_lock_configuration"):
            self.client.put_object_lock_configuration(
                Bucket=self.bucket,
                ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": want}})

    def check(self) -> None:
        with self._mapped("head_bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def _lock_args(self) -> dict:
        if not self.lock_mode:
            return {}
        until = datetime.now(UTC) + timedelta(days=self.lock_days or 0)
        return {"ObjectLockMode": self.lock_mode, "ObjectLockRetainUntilDate": until}

    def put_file(self, key: str, path: Path) -> ObjectRef:
        digest, size = sha256_file(path)
        with self._mapped("put", key), open(path, "rb") as f:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=f,
                                   Metadata={"sha256": digest}, **self._lock_args())
        return ObjectRef(_clean_key(key), size, digest)

    def put_bytes(self, key: str, data: bytes) -> ObjectRef:
        digest = hashlib.sha256(data).hexdigest()
        with self._mapped("put", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                   Metadata={"sha256": digest}, **self._lock_args())
        return ObjectRef(_clean_key(key), len(data), digest)

    def get_file(self, key: str, dest: Path) -> None:
        with self._mapped("get", key):
            self.client.download_file(self.bucket, self._key(key), str(dest))

    def get_bytes(self, key: str) -> bytes:
        with self._mapped("get", key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            with self._mapped("head", key):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except RepositoryMissing:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        out: list[str] = []
        with self._mapped("list"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                out += [o["Key"][len(self.prefix) + 1 if self.prefix else 0:] for o in page.get("Contents", [])]
        return sorted(out)

    def delete(self, key: str) -> None:
        with self._mapped("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def sha256(self, key: str) -> str:
        h = hashlib.sha256()
        with self._mapped("get", key):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            for chunk in iter(lambda: body.read(_CHUNK), b""):
                h.update(chunk)
        return h.hexdigest()

    def pgbackrest_options(self) -> dict[str, str]:
        """repo1-* options for the same bucket; the keys go in the (0600) config file, never argv."""
        if self.pgbackrest is None:
            raise RepositoryError(f"{self.describe()}: pgBackRest needs a TLS endpoint (pass pgbackrest=PgBackRestS3)")
        tls = self.pgbackrest
        opts = {
            "repo1-type": "s3", "repo1-path": f"/{self.prefix}/{PGBACKREST_DIR}".replace("//", "/"),
            "repo1-s3-bucket": self.bucket, "repo1-s3-region": self.region,
            "repo1-s3-endpoint": tls.host, "repo1-storage-port": str(tls.port), "repo1-s3-uri-style": "path",
            "repo1-s3-key": self.access_key, "repo1-s3-key-secret": self.secret_key,
        }
        if tls.ca_file:
            opts["repo1-storage-ca-file"] = tls.ca_file
        if not tls.verify_tls:
            opts["repo1-storage-verify-tls"] = "n"
        return opts


class PgBackRestS3Repository(S3Repository):
    """A user's own pgBackRest repository in S3 (its bucket + repo1-path), opened read-only.

    Like `PgBackRestLocalRepository`: keys keep the `pgbackrest/` prefix, so `verify_stanza` reads
    `pgbackrest/backup/<stanza>/…` as `<path>/backup/<stanza>/…` of the bucket; every write
    (put, delete, bucket creation) is refused. chaosdrill reads the bucket through boto3 at
    `endpoint_url` (default https://endpoint:port); pgBackRest reaches it over TLS at
    `endpoint`:`port` (it checks the DNS name, so "localhost", with `ca_file` for a self-signed cert).
    """

    def __init__(self, *, endpoint: str, port: int = 443, bucket: str, path: str = "/", region: str = "us-east-1",
                 access_key: str, secret_key: str, ca_file: str | None = None, verify_tls: bool = True,
                 endpoint_url: str | None = None, cipher_pass: str | None = None, timeout_s: float = 5.0) -> None:
        super().__init__(endpoint_url=endpoint_url or f"https://{endpoint}:{port}", bucket=bucket,
                         prefix=path.strip("/"), access_key=access_key, secret_key=secret_key, region=region,
                         verify=ca_file or verify_tls, timeout_s=timeout_s,
                         pgbackrest=PgBackRestS3(host=endpoint, port=port, ca_file=ca_file, verify_tls=verify_tls))
        self.cipher_pass = cipher_pass

    def describe(self) -> str:
        return f"pgBackRest repository s3://{self.bucket}/{self.prefix} at {self.endpoint_url}"

    def __repr__(self) -> str:
        return (f"PgBackRestS3Repository(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r}, "
                f"path={self.prefix!r})")

    def _key(self, key: str) -> str:
        k = _clean_key(key)
        if k == PGBACKREST_DIR or k.startswith(PGBACKREST_DIR + "/"):
            rest = k[len(PGBACKREST_DIR) + 1:]
            return "/".join(p for p in (self.prefix, rest) if p)
        return "/".join(p for p in (self.prefix, ".chaosdrill-not-a-pgbackrest-key", k) if p)  # never exists

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix) if prefix else ""
        if prefix and prefix.endswith("/"):
            full += "/"
        elif not prefix and self.prefix:
            full = self.prefix + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        out: list[str] = []
        with self._mapped("list"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                out += [f"{PGBACKREST_DIR}/{o['Key'][strip:]}" for o in page.get("Contents", [])]
        return sorted(out)

    def init(self) -> None:
        self.check()  # never created here: it is the user's

    def _refuse(self, *_args: object) -> None:
        raise ReadOnlyRepositoryError(f"{self.describe()} is read-only: chaosdrill never writes into it")

    put_file = put_bytes = delete = _refuse  # type: ignore[assignment]

    def pgbackrest_options(self) -> dict[str, str]:
        opts = super().pgbackrest_options() | {"repo1-path": "/" + self.prefix}
        if self.cipher_pass:
            opts |= {"repo1-cipher-type": "aes-256-cbc", "repo1-cipher-pass": self.cipher_pass}
        return opts
