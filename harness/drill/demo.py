"""A small demo source for `pytest scenarios/ -m restore_test` when no `[restore_test]` source is
configured: a throwaway PostgreSQL (a recorded local environment, so cleanup knows it, with
track_commit_timestamp on) archiving into a new pgBackRest repository made with plain pgbackrest
commands (stanza-create, backup) — the way a user's repository is made, not through chaosdrill's
backup manager. Point `[restore_test.pgbackrest]` at your own repository to test yours instead.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from harness.config import LocalEnvConfig, RestoreTestPgBackRest
from harness.env.local import LocalEnvironment
from harness.env.servers import chown_to_pg_user
from resilience.backup.runner import run, which

STANZA = "demo"


@contextmanager
def demo_pgbackrest(local: LocalEnvConfig, rows: int = 10_000, scale: int = 0) -> Iterator[RestoreTestPgBackRest]:
    """Yields the `[restore_test.pgbackrest]` of a fresh demo repository (a full backup, then more
    commits archived); removes cluster and repository afterwards. `scale` > 0 loads pgbench data."""
    pgbackrest = which("pgbackrest", "install pgbackrest (apt-get install pgbackrest)")
    env = LocalEnvironment(local.model_copy(update={"postgres_port": 0, "redis_port": 0, "proxy": False}),
                           with_app=False, label="rt-demo-src")
    try:
        base = env.base / "pgbackrest"
        repo = base / "repo"
        for d in (base, repo, base / "log", base / "lock", base / "spool"):
            d.mkdir(parents=True, exist_ok=True)
            chown_to_pg_user(d)
        conf = base / "pgbackrest.conf"
        conf.write_text(f"[global]\nrepo1-path={repo}\nrepo1-retention-full=9\nlog-path={base}/log\n"
                        f"lock-path={base}/lock\nspool-path={base}/spool\nstart-fast=y\ncompress-type=none\n"
                        f"process-max=2\n\n[{STANZA}]\npg1-path={env.postgres.data}\npg1-port={env.postgres.port}\n"
                        f"pg1-socket-path={env.postgres.base}\n")
        chown_to_pg_user(conf)
        env.postgres.settings.update({
            "wal_level": "replica", "archive_mode": "on", "track_commit_timestamp": "on",
            "archive_command": f"'{pgbackrest} --config={conf} --stanza={STANZA} archive-push %p'"})
        env.up()

        def br(*args: str) -> None:
            run([pgbackrest, f"--config={conf}", f"--stanza={STANZA}", "--log-level-console=warn", *args],
                as_pg=True, what=f"pgbackrest {args[0]}")

        def psql(sql: str, db: str = "shop") -> None:
            run([str(env.postgres.bindir / "psql"), "-h", "127.0.0.1", "-p", str(env.postgres.port), "-U", "postgres",
                 "-d", db, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql], what="psql")

        br("stanza-create")
        psql("create database shop", "postgres")
        psql("create table orders(id bigserial primary key, item text, created_at timestamptz default now());"
             f"insert into orders(item) select 'item ' || g from generate_series(1, {rows}) g;"
             "create index on orders(item)")
        if scale:
            run([str(env.postgres.bindir / "pgbench"), "-h", "127.0.0.1", "-p", str(env.postgres.port), "-U",
                 "postgres", "-i", "-s", str(scale), "-q", "shop"], what="pgbench -i", timeout=3600)
        br("backup", "--type=full")
        psql("insert into orders(item) select 'after the backup ' || g from generate_series(1, 100) g")
        br("check")  # switches WAL and waits until it is archived
        env.postgres.stop("fast")  # the source is gone: only its repository is left, as in a disaster
        yield RestoreTestPgBackRest(path=str(repo), stanza=STANZA)
    finally:
        env.down()
        shutil.rmtree(env.base, ignore_errors=True)
