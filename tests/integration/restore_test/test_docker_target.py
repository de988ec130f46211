"""`[restore_test] target = "docker"`: the user's pgBackRest backup restored on the host and served by
PostgreSQL in a container of the image of the major the backup needs (built here from Debian's packages,
no registry), on the host network on a loopback port; the WAL it replays staged with `pgbackrest
archive-get` (the image has no pgBackRest); every check run with the image's own tools; nothing left
afterwards. A wrong image major or a missing image is one line, exit 4, nothing started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.env.local import load_state

from .conftest import make_user_cluster, seed

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "chaosdrill-compose-postgres:15"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def postgres_image():
    setup = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")], capture_output=True, text=True,
                           timeout=900)
    if setup.returncode != 0:
        pytest.skip(f"no Docker engine: {(setup.stderr.strip().splitlines() or ['ensure-docker.sh failed'])[-1]}")
    build = subprocess.run(["bash", str(ROOT / "scripts" / "build-compose-images.sh")], capture_output=True,
                           text=True, timeout=900)
    assert build.returncode == 0, build.stderr
    return IMAGE


def chaosdrill(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli_main", *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ | {"COLUMNS": "300"})


def containers() -> list[str]:
    proc = subprocess.run(["docker", "ps", "-a", "-q", "--filter", "label=chaosdrill.restore_test"],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout.split()


def test_pgbackrest_backup_restored_into_a_container_of_its_major(postgres_image, scratch_dir, tmp_path):
    c = make_user_cluster(scratch_dir / "user", track_commit_timestamp=True)
    try:
        seed(c)
        c.pgbackrest("backup", "--type=full")
        c.psql("insert into orders(item) select 'after the backup ' || g from generate_series(1, 25) g", db="shop")
        c.switch_wal()
        before = {r["id"] for r in load_state()}
        toml = tmp_path / "chaosdrill.toml"
        toml.write_text(f'[targets]\nrto = "300s"\nrpo = "1h"\n[restore_test]\ntarget = "docker"\n'
                        f'image = "chaosdrill-compose-postgres:{{major}}"\n'
                        f'[restore_test.pgbackrest]\npath = "{c.repo}"\nstanza = "main"\n'
                        '[[restore_test.checks]]\nname = "replayed rows"\ndatabase = "shop"\n'
                        "sql = \"select count(*) from orders where item like 'after the backup %'\"\nexpect = \"= 25\"\n")
        proc = chaosdrill("restore-test", "-c", str(toml), "--results", str(tmp_path / "results"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "in a container of chaosdrill-compose-postgres:15" in proc.stderr
        (result_path,) = (tmp_path / "results").glob("*/result.json")
        result = json.loads(result_path.read_text())
        assert result["environment"]["target"]["kind"] == "docker"
        assert result["environment"]["target"]["image"] == IMAGE
        rt = result["measurements"]["restore_test"]
        checks = {ch["name"]: ch for ch in rt["checks"]}
        assert checks["SQL: replayed rows"]["passed"], checks  # WAL after the backup was replayed in the container
        assert all(ch["passed"] for ch in rt["checks"]), [ch for ch in rt["checks"] if not ch["passed"]]
        assert any(n.startswith("pg_amcheck") for n in checks)
        restore = next(s for s in result["steps"] if s["step"] == "restore")
        assert restore["detail"]["wal_staged"] >= 1
        assert containers() == [], "the container is gone"
        assert [r["id"] for r in load_state() if r["id"] not in before] == []
    finally:
        c.stop()


def test_a_missing_image_is_one_line_exit_4_and_another_major_is_named(postgres_image, scratch_dir, tmp_path):
    from harness.drill.container import check_image
    from harness.errors import EnvironmentStartError

    c = make_user_cluster(scratch_dir / "user", track_commit_timestamp=False)
    try:
        c.pgbackrest("backup", "--type=full")
        toml = tmp_path / "chaosdrill.toml"
        toml.write_text('[restore_test]\ntarget = "docker"\nimage = "chaosdrill-test-nope:{major}"\n'
                        f'[restore_test.pgbackrest]\npath = "{c.repo}"\nstanza = "main"\n')
        proc = chaosdrill("restore-test", "-c", str(toml), "--results", str(tmp_path / "results"))
        assert proc.returncode == 4, proc.stdout + proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("chaosdrill:")]
        assert len(lines) == 1 and "chaosdrill-test-nope:15 is not on this Docker engine" in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()
        assert containers() == []
    finally:
        c.stop()
    # only PostgreSQL 15 is installed here, so "an image of another major" is the 15 image under a 16 tag
    subprocess.run(["docker", "tag", IMAGE, "chaosdrill-test-pg-mislabelled:16"], check=True, timeout=60)
    try:
        with pytest.raises(EnvironmentStartError, match="holds PostgreSQL 15, the backup needs 16"):
            check_image("chaosdrill-test-pg-mislabelled:16", 16)
    finally:
        subprocess.run(["docker", "rmi", "chaosdrill-test-pg-mislabelled:16"], timeout=60, capture_output=True)


def test_a_pg_dump_restored_with_the_images_own_tools(postgres_image, scratch_dir, tmp_path):
    """A pg_dump archive: initdb, createdb, pg_restore and pg_amcheck all run from the image (the dump is
    mounted read-only at its own path); the rows arrive."""
    from .conftest import BIN

    c = make_user_cluster(scratch_dir / "dumpsrc", track_commit_timestamp=False)
    try:
        seed(c)
        rows = c.psql("select count(*) from orders", db="shop")
        dump = scratch_dir / "shop.dump"
        subprocess.run([str(BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(c.port), "-U", "postgres", "-Fc", "-f",
                        str(dump), "shop"], check=True, timeout=120)
    finally:
        c.stop()
    toml = tmp_path / "chaosdrill.toml"
    toml.write_text(f'[restore_test]\ntarget = "docker"\n[restore_test.pg_dump]\npath = "{dump}"\ndatabase = "shop"\n'
                    '[[restore_test.checks]]\nname = "orders"\ndatabase = "shop"\n'
                    f'sql = "select count(*) from orders"\nexpect = "= {rows}"\n')
    proc = chaosdrill("restore-test", "-c", str(toml), "--results", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result_path,) = (tmp_path / "results").glob("*/result.json")
    result = json.loads(result_path.read_text())
    assert result["environment"]["target"]["image"] == IMAGE
    checks = {ch["name"]: ch for ch in result["measurements"]["restore_test"]["checks"]}
    assert checks["SQL: orders"]["passed"] and all(ch["passed"] for ch in checks.values()), checks
    assert containers() == []


def test_a_killed_harness_leaves_a_container_that_cleanup_removes(postgres_image, scratch_dir, tmp_path):
    """SIGKILL (no unwinding at all) while the container serves: `chaosdrill cleanup` stops its server
    by the recorded pid and marker, Docker removes the container (--rm), the environment is gone."""
    import signal

    from harness.cleanup import cleanup_all
    from tests.helpers.interrupt import signal_cli_when

    c = make_user_cluster(scratch_dir / "user", track_commit_timestamp=True)
    try:
        seed(c)
        c.pgbackrest("backup", "--type=full")
        before = {r["id"] for r in load_state()}
        toml = tmp_path / "chaosdrill.toml"
        toml.write_text(f'[restore_test]\ntarget = "docker"\nheapallindexed = true\n'
                        f'[restore_test.pgbackrest]\npath = "{c.repo}"\nstanza = "main"\n')
        proc = signal_cli_when(["restore-test", "-c", str(toml), "--results", str(tmp_path / "results")],
                               "pg_amcheck on every database", sig=signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert containers() != [], "the container outlived the killed harness"
        import tempfile
        from pathlib import Path

        [scratch] = Path(tempfile.gettempdir()).glob(f"chaosdrill-scratch-restore-test-{proc.pid}-*")  # holds pgbackrest.conf
        lines = cleanup_all()
        assert any(ln.startswith("environment restore-test-") for ln in lines), lines
        assert f"removed {scratch} (scratch dir of a killed run, pid {proc.pid})" in lines and not scratch.exists()
        import time

        deadline = time.monotonic() + 30
        while containers() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert containers() == []
        assert [r["id"] for r in load_state() if r["id"] not in before] == []
    finally:
        c.stop()


def test_teardown_from_the_record_removes_a_tool_container_that_never_started(postgres_image):
    """A harness killed while a one-off tool container was being created leaves it in state "Created";
    every container of the cluster carries the environment's label, and the record names it."""
    from harness.env.local import teardown_recorded

    label = "chaosdrill.restore_test=restore-test-leftover"
    made = subprocess.run(["docker", "create", "--label", label, "--network", "none", "--entrypoint", "true", IMAGE],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip()[:12] in containers()
    teardown_recorded({"id": "restore-test-leftover", "postgres": {"data": "/nonexistent", "docker_label": label}})
    assert containers() == []
