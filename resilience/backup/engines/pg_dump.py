"""Logical PostgreSQL backups: pg_dump -Fc, restored with pg_restore -j N into a fresh database.

Portable across versions and readable, but slow to restore (bench/results/backup.md: 3–6× slower than
a physical restore), and always full: a dump has no increments and no WAL, so RPO is the
dump's age.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from resilience.backup.catalog import BackupPart, BackupType
from resilience.backup.errors import EngineError, RestoreTargetNotEmpty
from resilience.backup.repository import Repository
from resilience.backup.runner import pg_bindir, run

LOOPBACK = "127.0.0.1"


class PgDumpEngine:
    """Dumps one database of a server on a loopback port."""

    kind = "postgres"
    engine = "pg_dump"

    def __init__(self, port: int, dbname: str = "postgres", host: str = LOOPBACK, user: str = "postgres",
                 name: str = "postgres", jobs: int = 2, timeout_s: float = 3600) -> None:
        self.host, self.port, self.dbname, self.user, self.name = host, port, dbname, user, name
        self.jobs, self.timeout_s = jobs, timeout_s
        self.bindir = pg_bindir()

    def __repr__(self) -> str:
        return f"PgDumpEngine({self.host}:{self.port}/{self.dbname})"

    def _conn(self, host: str, port: int, user: str) -> list[str]:
        return ["-h", host, "-p", str(port), "-U", user]

    def dump(self, out: Path) -> Path:
        run([self.bindir / "pg_dump", *self._conn(self.host, self.port, self.user), "-d", self.dbname,
             "-Fc", "-Z", "1", "-f", out], timeout=self.timeout_s, error=EngineError, what="pg_dump")
        return out

    def backup(self, repo: Repository, set_id: str, type_: BackupType, base: BackupPart | None) -> BackupPart:
        """A full dump every time (logical dumps have no increments)."""
        with tempfile.TemporaryDirectory() as tmp:
            ref = repo.put_file(f"sets/{set_id}/{self.name}/{self.dbname}.dump", self.dump(Path(tmp) / "db.dump"))
        return BackupPart(kind=self.kind, name=self.name, engine=self.engine, objects=(ref,), size=ref.size,
                          meta={"dump": ref.key, "dbname": self.dbname})

    def restore_file(self, dump: Path, port: int, dbname: str, host: str = LOOPBACK, jobs: int | None = None,
                     user: str = "postgres") -> None:
        """createdb `dbname` (must not exist) on the target server, then pg_restore -j N into it."""
        conn = self._conn(host, port, user)
        exists = run([self.bindir / "psql", *conn, "-d", "postgres", "-XAtc",
                      f"select 1 from pg_database where datname = '{dbname.replace(chr(39), '')}'"],
                     error=EngineError, what="psql").stdout.strip()
        if exists:
            raise RestoreTargetNotEmpty(f"database {dbname!r} already exists on {host}:{port}; "
                                        "pg_restore only goes into a fresh database")
        run([self.bindir / "createdb", *conn, dbname], error=EngineError, what="createdb")
        run([self.bindir / "pg_restore", *conn, "-d", dbname, "-j", str(jobs or self.jobs), "--no-owner",
             "--exit-on-error", str(dump)], timeout=self.timeout_s, error=EngineError, what="pg_restore")

    def restore(self, repo: Repository, part: BackupPart, port: int, dbname: str, host: str = LOOPBACK,
                jobs: int | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "db.dump"
            repo.get_file(part.meta["dump"], local)
            self.restore_file(local, port, dbname, host, jobs)
