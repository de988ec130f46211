"""What a restore test restores: YOUR backups, opened read-only.

    PgBackRestSource   a pgBackRest repository (local repo1-path or S3) + stanza; latest, a label or a time
    PgDumpSource       a pg_dump archive (custom or directory format): a path or the newest match of a glob
    RedisRdbSource     an RDB file (+ an optional key list)
    FileTreeSource     a directory or tarball (+ an optional sha256sum manifest)

Opening a source is where bad input is refused (one line, before anything starts): a missing or
unreadable repository, refused credentials, an unknown stanza or backup. Nothing here writes into
the source: repositories are opened through `PgBackRestLocalRepository` (writes refused) and
pgBackRest only reads them (info, verify, restore, archive-get).
"""

from __future__ import annotations

import glob
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config import RestoreTestFiles, RestoreTestPgBackRest, RestoreTestPgDump, RestoreTestRedis
from harness.drill.pipeline import one_line as _one_line
from harness.errors import ConfigError, EnvironmentStartError
from resilience.backup.engines.pgbackrest import PgBackRest, PgBackRestBackup
from resilience.backup.errors import BackupError
from resilience.backup.repository import PgBackRestLocalRepository
from resilience.backup.verify import VerifyReport, segno, verify_stanza


class RestoreTestRefused(ConfigError):
    """Bad input found before anything started (repository, stanza, backup, credentials): exit 2."""


class MajorVersionMissing(EnvironmentStartError):
    """The backup needs a PostgreSQL major version whose binaries are not installed: exit 4."""


def _pg_major(bindir: Path) -> int | None:
    try:
        out = subprocess.run([str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(m.group(1)) if m else None


def installed_majors(root: Path | str) -> list[int]:
    """Major versions with server binaries under `root`/<major>/bin (Debian's layout)."""
    found = []
    for cand in glob.glob(str(Path(root) / "*" / "bin" / "pg_ctl")):
        name = Path(cand).parent.parent.name
        if name.isdigit():
            found.append(int(name))
    return sorted(found)


def resolve_bindir(major: int, root: Path | str, *, exact: bool = True) -> Path:
    """The bin directory of PostgreSQL `major` (a physical backup needs exactly it; a dump any major ≥ it):
    $CHAOSDRILL_PG_BINDIR when it is that version, else `root`/<major>/bin; else one line saying
    which version is missing and how to get it (exit 4)."""
    explicit = os.environ.get("CHAOSDRILL_PG_BINDIR")
    if explicit and (Path(explicit) / "pg_ctl").exists():
        have = _pg_major(Path(explicit))
        if have == major or (not exact and have is not None and have >= major):
            return Path(explicit)
    majors = installed_majors(root)
    if major in majors:
        return Path(root) / str(major) / "bin"
    newer = [m for m in majors if m > major]
    if not exact and newer:
        return Path(root) / str(newer[-1]) / "bin"
    have = ", ".join(map(str, majors)) or "none"
    raise MajorVersionMissing(
        f"the backup needs PostgreSQL {major}, which is not installed in {root} (installed: {have}): "
        f"install postgresql-{major} (apt.postgresql.org: apt-get install postgresql-{major}) or set "
        "restore_test.pg_bin_root / CHAOSDRILL_PG_BINDIR to its binaries")


def source_id(*parts: str) -> str:
    """A stable id of a source (kind + location), so runs of the same source are compared."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _keep_symlinks(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter, except that a symlink pointing out of the tree (`current ->
    /srv/app/releases/v3`) is kept as it is: it is inert in a throwaway directory, and the manifest
    check follows it only inside the restored tree.

    Inert because nothing is ever written through a link: a member whose name (or a hard link whose
    target) goes through any symlink already extracted, or has a `..` part, is refused here, checked
    part by part with lstat. That also closes the realpath blind spot the "data" filter has on
    Python < 3.11.13 (CVE-2025-4517): realpath is not needed for these checks."""
    paths = [member.name] + ([member.linkname] if member.islnk() else [])
    for path in paths:
        parts = [p for p in path.lstrip("/").split("/") if p not in ("", ".")]
        if ".." in parts:
            raise tarfile.FilterError(f"{member.name!r}: a '..' in {path!r}")
        for k in range(1, len(parts) + 1):
            if os.path.islink(os.path.join(dest, *parts[:k])):
                raise tarfile.FilterError(f"{member.name!r} would go through the symlink {'/'.join(parts[:k])!r}")
    try:
        return tarfile.data_filter(member, dest)
    except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
        if not member.issym():
            raise
        return tarfile.tar_filter(member, dest)


def newest_match(pattern: str, what: str) -> Path:
    """A path, or the newest (by mtime) match of a glob; one line when nothing matches."""
    expanded = os.path.expanduser(pattern)
    matches = [Path(p) for p in glob.glob(expanded)] if glob.has_magic(expanded) else (
        [Path(expanded)] if Path(expanded).exists() else [])
    if not matches:
        raise RestoreTestRefused(f"{what}: nothing at {pattern}")
    return max(matches, key=lambda p: (p.stat().st_mtime, str(p)))


# -- PostgreSQL sources ---------------------------------------------------------------------------
@dataclass
class PgBackRestSource:
    """A user's pgBackRest stanza; opened with `open()`, which refuses bad input in one line."""

    cfg: RestoreTestPgBackRest
    backup: str = "latest"
    target_time: datetime | None = None
    kind: str = "pgbackrest"
    repo: Any = None
    br: PgBackRest | None = None
    chosen: PgBackRestBackup | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str:
        if self.cfg.kind == "s3":
            return f"s3://{self.cfg.bucket}{'/' + self.cfg.prefix.strip('/') if self.cfg.prefix.strip('/') else ''}"
        return str(Path(self.cfg.path).absolute())

    def describe(self) -> str:
        return f"pgBackRest stanza {self.cfg.stanza} in {self.location}"

    @property
    def id(self) -> str:
        return source_id("pgbackrest", self.location, self.cfg.stanza)

    def _repository(self):
        cipher = self.cfg.cipher_pass.get_secret_value() if self.cfg.cipher_pass else None
        if self.cfg.kind == "local":
            return PgBackRestLocalRepository(self.cfg.path, cipher_pass=cipher)
        from resilience.backup.repository import PgBackRestS3Repository

        host, _, port = self.cfg.endpoint.partition(":")
        return PgBackRestS3Repository(
            endpoint=host, port=int(port or 443), bucket=self.cfg.bucket, path=self.cfg.prefix, region=self.cfg.region,
            access_key=self.cfg.access_key.get_secret_value(), secret_key=self.cfg.secret_key.get_secret_value(),
            ca_file=self.cfg.ca_file, verify_tls=self.cfg.verify_tls, endpoint_url=self.cfg.endpoint_url,
            cipher_pass=cipher)

    def open(self, workdir: Path) -> None:
        """Repository reachable and readable, stanza known, the backup chosen; else one line (exit 2)."""
        try:
            self.repo = self._repository()
            self.repo.check()
            self.br = PgBackRest(repo=self.repo, workdir=workdir / "pgbackrest", pg_data=workdir / "no-cluster",
                                 pg_port=5432, stanza=self.cfg.stanza, restore_process_max=4)
            self.br.write_config()
            self.info = self.br.info_json()
        except BackupError as exc:
            raise RestoreTestRefused(f"restore_test.pgbackrest: {_one_line(exc)}") from None
        status = self.info.get("status") or {}
        backups = self.info.get("backup") or []
        if status.get("code", 0) not in (0, 2) or (status.get("code") == 2 and not backups):
            hint = ""
            if status.get("code") == 1:
                hint = f" (stanzas there: {', '.join(self._stanzas()) or 'none'})"
            raise RestoreTestRefused(f"restore_test.pgbackrest: stanza {self.cfg.stanza!r} in {self.location}: "
                                     f"{status.get('message') or 'unusable'}{hint}")
        parsed = [PgBackRestBackup.from_json(b) for b in backups]
        if self.backup != "latest":
            chosen = [b for b in parsed if b.label == self.backup]
            if not chosen:
                raise RestoreTestRefused(f"restore_test.backup: no backup {self.backup!r} in stanza {self.cfg.stanza}; "
                                         f"it holds: {', '.join(b.label for b in parsed[-5:])}")
        elif self.target_time is not None:
            chosen = [b for b in parsed if b.finished_at <= self.target_time]
            if not chosen:
                raise RestoreTestRefused(f"--target-time {self.target_time.isoformat()}: no backup of stanza "
                                         f"{self.cfg.stanza} finished before it")
        else:
            chosen = [b for b in parsed if not b.error] or parsed
        self.chosen = chosen[-1]

    def _stanzas(self) -> list[str]:
        try:
            return sorted({k.split("/")[2] for k in self.repo.list("pgbackrest/backup/") if k.count("/") >= 3})
        except BackupError:
            return []

    def major(self) -> int:
        """The PostgreSQL major the chosen backup was taken from (backup.info's db entry)."""
        raw = next((b for b in self.info.get("backup", []) if b.get("label") == self.chosen.label), {})
        db_id = (raw.get("database") or {}).get("id")
        dbs = self.info.get("db") or []
        db = next((d for d in dbs if d.get("id") == db_id), dbs[-1] if dbs else {})
        version = str(db.get("version", "0"))
        return int(version.split(".")[0])

    def archive_end(self) -> str | None:
        """The newest WAL segment the stanza's archive holds for the chosen backup's database."""
        ends = [a.get("max") for a in self.info.get("archive") or [] if a.get("max")]
        return max(ends) if ends else None

    def verify(self, workdir: Path) -> VerifyReport:
        return verify_stanza(self.repo, self.cfg.stanza, label=self.chosen.label, pgbackrest=self.br, workdir=workdir)

    def restore(self, target: Path) -> None:
        self.br.restore(target, label=self.chosen.label, target_time=self.target_time)

    def stage_wal(self, dest: Path, pg_data: Path) -> list[str]:
        """Every archived WAL segment from the chosen backup's first on, and every timeline history file,
        fetched with `pgbackrest archive-get` into `dest`: the WAL a server without pgBackRest (a container
        image) replays with restore_command = cp. Returns the names fetched. Four `archive-get`s run at
        once: each is a process start plus one object read (a network round trip on S3). Measured, 18
        segments of a local repository on 2 cores: 0.80–1.43 s one by one, 0.42–0.61 s four at once."""
        names = [seg for segs in self.br.archived_segments().values() for seg in segs
                 if segment_index(seg) >= segment_index(self.chosen.wal_start)]
        names = sorted(set(names)) + self.br.archived_history()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda name: self.br.archive_get(name, dest / name, pg_data), names))
        return names

    def summary(self) -> dict[str, Any]:
        b = self.chosen
        return {"kind": self.kind, "location": self.location, "stanza": self.cfg.stanza, "id": b.label,
                "type": str(b.type), "prior": b.prior, "started_at": b.started_at.isoformat(),
                "finished_at": b.finished_at.isoformat(), "lsn_range": f"{b.lsn_start} → {b.lsn_stop}",
                "wal_range": f"{b.wal_start} → {b.wal_stop}", "db_size": b.db_size, "repo_size": b.repo_size,
                "archive_end": self.archive_end(), "pg_major": self.major(),
                "encrypted": bool(self.cfg.cipher_pass), "backups_in_stanza": len(self.info.get("backup") or [])}

    def stop_time(self) -> datetime:
        return self.chosen.finished_at


@dataclass
class PgDumpSource:
    """A pg_dump archive (custom or directory format); `pg_restore -l` reads its header."""

    cfg: RestoreTestPgDump
    kind: str = "pg_dump"
    path: Path | None = None
    header: dict[str, str] = field(default_factory=dict)
    toc_error: str | None = None

    @property
    def location(self) -> str:
        return str(Path(os.path.expanduser(self.cfg.path)).absolute())

    def describe(self) -> str:
        return f"pg_dump archive {self.path or self.cfg.path}"

    @property
    def id(self) -> str:
        return source_id("pg_dump", self.location, self.cfg.database or "")

    def open(self, workdir: Path, pg_bin_root: Path | str) -> None:
        self.path = newest_match(self.cfg.path, "restore_test.pg_dump.path")
        if self.path.is_dir() and not (self.path / "toc.dat").exists():
            raise RestoreTestRefused(f"restore_test.pg_dump.path: {self.path} is a directory without toc.dat "
                                     "(not a directory-format dump)")
        if not os.access(self.path, os.R_OK):
            raise RestoreTestRefused(f"restore_test.pg_dump.path: {self.path} is not readable")
        majors = installed_majors(pg_bin_root)
        tool = (Path(pg_bin_root) / str(majors[-1]) / "bin" / "pg_restore") if majors else Path("pg_restore")
        proc = subprocess.run([str(tool), "-l", str(self.path)], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            self.toc_error = _one_line(Exception(proc.stderr or proc.stdout or f"exit {proc.returncode}"))
            return
        for line in proc.stdout.splitlines()[:30]:  # "; Archive created at T", ";     dbname: shop" …
            if m := re.match(r";\s+Archive created at (.+)$", line):
                self.header["archive created at"] = m.group(1).strip()
            elif m := re.match(r";\s+([A-Za-z ]+):\s*(.*)$", line):
                self.header[m.group(1).strip().lower()] = m.group(2).strip()

    def major(self) -> int:
        m = re.match(r"(\d+)", self.header.get("dumped from database version", ""))
        return int(m.group(1)) if m else 0

    @property
    def database(self) -> str:
        return self.cfg.database or self.header.get("dbname") or "restored"

    def created_at(self) -> datetime | None:
        text = self.header.get("archive created at")
        if not text:
            return None
        try:
            return datetime.strptime(" ".join(text.split()[:2]), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) \
                if text.endswith(("UTC", "+00", "GMT")) else datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        except ValueError:
            return datetime.fromtimestamp(self.path.stat().st_mtime, UTC)

    def summary(self) -> dict[str, Any]:
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file()) if self.path.is_dir() \
            else self.path.stat().st_size
        created = self.created_at()
        return {"kind": self.kind, "location": self.location, "id": str(self.path), "type": "logical dump",
                "format": self.header.get("format", "unknown"), "database": self.database,
                "finished_at": created.isoformat() if created else None, "size": size,
                "dumped_from": self.header.get("dumped from database version"), "pg_major": self.major(),
                "toc_error": self.toc_error}

    def stop_time(self) -> datetime | None:
        return self.created_at()


# -- Redis and file sources -----------------------------------------------------------------------
@dataclass
class RedisRdbSource:
    cfg: RestoreTestRedis
    path: Path | None = None

    def open(self) -> None:
        self.path = newest_match(self.cfg.path, "restore_test.redis.path")
        if not self.path.is_file() or not os.access(self.path, os.R_OK):
            raise RestoreTestRefused(f"restore_test.redis.path: {self.path} is not a readable file")
        if self.cfg.keys and not Path(self.cfg.keys).is_file():
            raise RestoreTestRefused(f"restore_test.redis.keys: {self.cfg.keys} is not a file")

    def saved_at(self, copy: Path) -> tuple[datetime, str]:
        """When the snapshot in `copy` (the restored copy, made with copy2: the source may be saved
        again meanwhile) was taken: the `ctime` Redis writes into the RDB's header, else the file's mtime."""
        ctime = rdb_ctime(copy)
        if ctime is not None:
            return ctime, f"RDB save time (ctime in {self.path.name})"
        return datetime.fromtimestamp(copy.stat().st_mtime, UTC), f"modification time of {self.path.name}"

    def expected_keys(self) -> list[str] | None:
        if not self.cfg.keys:
            return None
        return [ln for ln in Path(self.cfg.keys).read_text().splitlines() if ln]


def rdb_ctime(path: Path) -> datetime | None:
    """The `ctime` auxiliary field of an RDB file (Redis ≥ 4 writes it first, as a Unix time), or None.

    Hand-written: the header's string encoding is a few lines, and no maintained RDB parser on PyPI
    reads only the header without walking the whole keyspace."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if not head.startswith(b"REDIS"):
        return None
    pos = 9

    def string() -> bytes | int:
        nonlocal pos
        first = head[pos]
        kind, pos = first >> 6, pos + 1
        if kind == 0:
            n = first & 0x3F
        elif kind == 1:
            n, pos = (first & 0x3F) << 8 | head[pos], pos + 1
        elif kind == 2:
            width = 4 if first == 0x80 else 8
            n, pos = int.from_bytes(head[pos:pos + width], "big"), pos + width
        else:  # an integer stored as a string: 8, 16 or 32 bits, little-endian (3 is LZF: not in the header)
            width = {0: 1, 1: 2, 2: 4}[first & 0x3F]
            n = width
        if pos + n > len(head):
            raise ValueError("truncated")
        value, pos = head[pos:pos + n], pos + n
        return int.from_bytes(value, "little", signed=True) if kind == 3 else value

    try:
        while pos < len(head) and head[pos] == 0xFA:  # AUX: name, value
            pos += 1
            name, value = string(), string()
            if name == b"ctime":
                seconds = value if isinstance(value, int) else int(value) if value.isdigit() else None
                # a time Redis could have written: after 2009 (its first release), not in the future
                if seconds is None or not 1_230_768_000 <= seconds <= datetime.now(UTC).timestamp() + 86_400:
                    return None
                return datetime.fromtimestamp(seconds, UTC)
    except (IndexError, KeyError, ValueError):  # a header cut short or not Redis's
        return None
    return None


@dataclass
class FileTreeSource:
    cfg: RestoreTestFiles
    path: Path | None = None

    def open(self) -> None:
        self.path = newest_match(self.cfg.path, "restore_test.files.path")
        if self.cfg.manifest and not Path(self.cfg.manifest).is_file():
            raise RestoreTestRefused(f"restore_test.files.manifest: {self.cfg.manifest} is not a file")

    def restore(self, target: Path) -> int:
        """Copy the tree (or extract the tarball) into `target`; returns the number of regular files.
        A damaged or unsafe tarball is a BackupError naming it (the caller fails this source's check)."""
        copied = 0

        def copy(src: str, dst: str) -> str:  # copytree calls it for regular files only (symlinks=True)
            nonlocal copied
            copied += 1
            return shutil.copy2(src, dst)

        try:
            if self.path.is_dir():
                shutil.copytree(self.path, target, symlinks=True, copy_function=copy)
                return copied
            target.mkdir(parents=True)
            with tarfile.open(self.path) as tar:
                tar.extractall(target, filter=_keep_symlinks)
                return sum(1 for m in tar.getmembers() if m.isreg())
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
            raise BackupError(f"{self.path}: cannot {'copy' if self.path.is_dir() else 'extract'} "
                              f"({type(exc).__name__}: {_one_line(exc)})") from None

    def origins(self) -> list[Path]:
        """Where the tree lived when backed up: absolute symlinks into these are followed inside the copy."""
        found = [Path(os.path.normpath(self.cfg.origin))] if self.cfg.origin else []
        if self.path.is_dir():
            found += [Path(os.path.abspath(self.path)), self.path.resolve()]
        return list(dict.fromkeys(found))

    def manifest(self) -> dict[str, str] | None:
        """relative path → SHA-256 from a `sha256sum` file ("<hex>  <path>" or "<hex> *<path>")."""
        if not self.cfg.manifest:
            return None
        out = {}
        for line in Path(self.cfg.manifest).read_text().splitlines():
            m = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line.strip())
            if m:
                out[os.path.normpath(m.group(2)).removeprefix("./")] = m.group(1).lower()
        return out


def wal_segment_of(lsn: str, tli: int = 1) -> str:
    """The WAL segment (16 MiB) holding `lsn` ("X/Y") on timeline `tli`."""
    hi, lo = (int(x, 16) for x in lsn.split("/"))
    n = (hi << 32 | lo) // (16 << 20)
    return f"{tli:08X}{n // 0x100:08X}{n % 0x100:08X}"


def segment_index(name: str) -> int:
    return segno(name)[1]
