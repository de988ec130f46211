"""Test-wide fixtures: real throwaway servers on loopback ports."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.env.servers import PostgresServer, RedisServer, chown_to_pg_user

# Tests keep their journal and environment records away from the user's real state dir,
# and remove it when the session ends (child processes inherit the variable).
if "CHAOSDRILL_STATE_DIR" not in os.environ:
    os.environ["CHAOSDRILL_STATE_DIR"] = tempfile.mkdtemp(prefix="chaosdrill-test-state-")
    atexit.register(shutil.rmtree, os.environ["CHAOSDRILL_STATE_DIR"], True)


@pytest.fixture
def scratch_dir():
    """A temp dir the postgres OS user may write to; removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="chaosdrill-test-"))
    chown_to_pg_user(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def pg_server(scratch_dir):
    """A running PostgreSQL 15 on a free 127.0.0.1 port (`.dsn`, `.port`, `.kill()`, `.start()`)."""
    server = PostgresServer(scratch_dir / "pg")
    server.init()
    server.start()
    yield server
    server.stop("immediate")


@pytest.fixture
def redis_server(scratch_dir):
    """A running Redis 7 on a free 127.0.0.1 port (`.url`, `.port`, `.kill()`, `.start()`)."""
    server = RedisServer(scratch_dir / "redis")
    server.start()
    yield server
    server.stop()
