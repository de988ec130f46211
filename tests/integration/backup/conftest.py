"""Fixtures for backup tests: an archiving PostgreSQL with a pgBackRest stanza, Redis with keys, file trees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from harness.env.servers import PostgresServer
from resilience.backup import BackupManager, LocalRepository, PgBackRest, RedisRdbEngine


@dataclass
class Stack:
    """A source environment: PostgreSQL archiving into `repo`, Redis, files and config."""

    base: Path
    pg: PostgresServer
    br: PgBackRest
    repo: LocalRepository
    redis_port: int
    files: Path
    config: Path

    def manager(self, **kw) -> BackupManager:
        return BackupManager(self.repo, pg=self.br, redis=RedisRdbEngine(port=self.redis_port),
                             files=[self.files], config=[self.config], **kw)


def make_archiving_pg(base: Path, repo, archive_timeout: float | None = None) -> tuple[PostgresServer, PgBackRest]:
    """A PostgreSQL whose archive_command pushes to `repo` through a fresh stanza."""
    pg = PostgresServer(base / "pg")
    br = PgBackRest(repo=repo, workdir=base / "pgbr", pg_data=pg.data, pg_port=pg.port, pg_socket_dir=pg.base)
    pg.settings = br.archive_settings(archive_timeout=archive_timeout) | {"synchronous_commit": "on"}
    pg.init()
    pg.start()
    return pg, br


@pytest.fixture
def stack(scratch_dir, redis_server):
    repo = LocalRepository(scratch_dir / "repo")
    repo.init()
    pg, br = make_archiving_pg(scratch_dir, repo)
    br.stanza_create()
    pg.psql("create table canary(seq int primary key, note text); "
            "insert into canary select g, md5(g::text) from generate_series(1, 5000) g")
    r = redis.Redis(port=redis_server.port)
    r.mset({f"k{i}": i for i in range(1000)})
    files = scratch_dir / "uploads"
    (files / "sub").mkdir(parents=True)
    (files / "a.txt").write_text("alpha\n")
    (files / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    config = scratch_dir / "etc" / "app.toml"
    config.parent.mkdir()
    config.write_text("[app]\nport = 8080\n")
    yield Stack(scratch_dir, pg, br, repo, redis_server.port, files, config)
    pg.stop("immediate")
