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


@dataclass
class S3Endpoint:
    """moto on 127.0.0.1 (plain http for boto3) and stunnel in front of it (TLS for pgBackRest)."""

    http_url: str
    tls_port: int
    cert: Path

    def repo(self, bucket: str, **kw):
        from resilience.backup import PgBackRestS3, S3Repository

        return S3Repository(endpoint_url=self.http_url, bucket=bucket, access_key="test", secret_key="test",
                            pgbackrest=PgBackRestS3(host="localhost", port=self.tls_port, ca_file=str(self.cert)),
                            **kw)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """One moto server + stunnel for the session (docs/recipes.md, section 4); buckets are per test."""
    import logging
    import shutil
    import subprocess

    from moto.server import ThreadedMotoServer

    from harness.env.ports import free_port, wait_for_port

    if not shutil.which("stunnel4") and not shutil.which("stunnel"):
        pytest.skip("stunnel4 is not installed")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    d = tmp_path_factory.mktemp("s3")
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, http_port = srv.get_host_and_port()
    assert host == "127.0.0.1"
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    cert.chmod(0o644)
    tls_port = free_port()
    conf = d / "stunnel.conf"
    conf.write_text(f"foreground=yes\npid=\n[s3]\naccept=127.0.0.1:{tls_port}\nconnect=127.0.0.1:{http_port}\n"
                    f"cert={cert}\nkey={key}\n")
    tunnel = subprocess.Popen([shutil.which("stunnel4") or "stunnel", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    assert wait_for_port(tls_port, timeout=10), "stunnel did not listen"
    yield S3Endpoint(f"http://127.0.0.1:{http_port}", tls_port, cert)
    tunnel.terminate()
    tunnel.wait(10)
    srv.stop()
