"""A user's own backups, made with plain tools (never through chaosdrill): a PostgreSQL 15 cluster with
data checksums (with or without track_commit_timestamp) archiving into a pgBackRest repository made
by `pgbackrest stanza-create` / `backup`, pg_dump archives, Redis RDB files and a file tree with a
`sha256sum` manifest."""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.env.ports import free_port
from resilience.backup.runner import as_pg_user, chown_pg

BIN = Path("/usr/lib/postgresql/15/bin")


def as_pg(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd="/", timeout=300,
                          **as_pg_user(), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return proc


@dataclass
class UserCluster:
    """A cluster and its pgBackRest stanza, as a user would have them."""

    base: Path
    data: Path
    port: int
    repo: Path
    conf: Path
    stanza: str = "main"

    def psql(self, sql: str, db: str = "postgres") -> str:
        return as_pg(BIN / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-XAtq",
                     "-v", "ON_ERROR_STOP=1", "-c", sql).stdout.strip()

    def pgbackrest(self, *args: str) -> str:
        return as_pg("pgbackrest", f"--config={self.conf}", f"--stanza={self.stanza}", "--log-level-console=warn",
                     *args).stdout

    def switch_wal(self) -> None:
        """Switch WAL and wait until the segment is archived (the source's own archiver, not chaosdrill)."""
        seg = self.psql("select pg_walfile_name(pg_switch_wal())")
        for _ in range(600):
            if self.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver")[:24] >= seg:
                return
            time.sleep(0.05)
        raise AssertionError(f"WAL segment {seg} was not archived")

    def stop(self) -> None:
        as_pg(BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "stop", check=False)


def make_user_cluster(base: Path, *, track_commit_timestamp: bool, cipher_pass: str | None = None,
                      repo_options: str | None = None) -> UserCluster:
    """`repo_options` = the repo1-* lines of pgbackrest.conf (e.g. an S3 repository); default a local repo1-path."""
    base.mkdir(parents=True, exist_ok=True)
    chown_pg(base)
    data, repo, port = base / "data", base / "repo", free_port()
    repo.mkdir()
    chown_pg(repo)
    for d in ("log", "lock", "spool"):
        (base / d).mkdir()
        chown_pg(base / d)
    conf = base / "pgbackrest.conf"
    cipher = f"repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass={cipher_pass}\n" if cipher_pass else ""
    conf.write_text(f"[global]\n{repo_options or f'repo1-path={repo}'}\nrepo1-retention-full=9\nlog-path={base}/log\n"
                    f"lock-path={base}/lock\nspool-path={base}/spool\nstart-fast=y\n{cipher}\n"
                    f"[main]\npg1-path={data}\npg1-port={port}\npg1-socket-path={base}\n")
    chown_pg(conf)
    as_pg(BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--data-checksums", "--no-sync", "-E", "UTF8",
          "--locale=C")
    with open(data / "postgresql.auto.conf", "a") as f:
        f.write(f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{base}'\n"
                "wal_level = replica\narchive_mode = on\n"
                f"archive_command = 'pgbackrest --config={conf} --stanza=main archive-push %p'\n"
                f"track_commit_timestamp = {'on' if track_commit_timestamp else 'off'}\nfsync = off\n")
    as_pg(BIN / "pg_ctl", "-D", data, "-l", base / "pg.log", "-w", "start")
    c = UserCluster(base, data, port, repo, conf)
    c.pgbackrest("stanza-create")
    return c


def seed(c: UserCluster) -> None:
    c.psql("create database shop")
    c.psql("create table orders(id serial primary key, item text, created_at timestamptz default now());"
           "insert into orders(item) select 'item ' || g from generate_series(1, 2000) g;"
           "create table customers(id int primary key, name text);"
           "insert into customers select g, md5(g::text) from generate_series(1, 500) g;"
           "create index on orders(item)", db="shop")


@pytest.fixture
def user_cluster(scratch_dir):
    """Cluster with checksums and track_commit_timestamp on, a full backup, then more commits archived."""
    c = make_user_cluster(scratch_dir / "user", track_commit_timestamp=True)
    seed(c)
    c.pgbackrest("backup", "--type=full")
    c.psql("insert into orders(item) select 'late ' || g from generate_series(1, 100) g", db="shop")
    c.switch_wal()
    yield c
    c.stop()


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file below `root` (the read-only proof: equal before and after)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def config_for(tmp: Path, restore_test: dict, **targets) -> dict:
    return {"run": {"results_dir": str(tmp / "results")}, "targets": {"rto": "300s", "rpo": "1h", **targets},
            "restore_test": restore_test}

