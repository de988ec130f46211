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


# The slow end-to-end slice (whole files, or file::test-name prefixes): `make test` leaves it out (its budget is 20 min on 2 cores) and
# `make test-e2e` runs it; CI runs both. Each entry is a whole test file of real runs.
E2E_FILES = (
    "integration/restore_test/",            # restores of real pgBackRest repositories and dumps (local, S3)
    "integration/test_stop_conditions.py",   # real fault runs tripping guards, SIGTERM mid-fault
    "integration/test_repeats.py",           # three real repeats through the CLI
    # the workflow template's own commands against a real run (its schema checks stay in `make test`)
    "integration/test_ci_templates.py::test_workflow_steps_run",
    "integration/test_evidence_browser.py",  # headless Chromium over an evidence pack, PDF
    "integration/test_evidence_upload.py",   # evidence packs into an Object Lock bucket (moto)
    "integration/backup/test_s3_object_lock.py",
    "integration/faults/test_load_workers.py",
    # S3 over moto + stunnel is slow (~25 s a verification): the S3 damages and the S3 drill's secrets
    # check run here; `make test` keeps the local-repository matrix and the fault run's secrets check
    "integration/backup/test_corruption_matrix.py::test_every_file_class_and_damage_is_caught_in_s3",
    "integration/backup/test_secrets_never_written.py::test_a_drill_over_s3_writes_and_prints_no_secret",
)


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: slow end-to-end slice, run by `make test-e2e` (CI runs it too)")


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).resolve().parent
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(root).as_posix() if str(item.fspath).startswith(
            str(root)) else ""
        if rel.startswith(E2E_FILES) or f"{rel}::{item.name}".startswith(E2E_FILES):
            item.add_marker(pytest.mark.e2e)
