"""The pgBackRest path of `chaosdrill restore-test` on a cluster WITHOUT track_commit_timestamp, through
the CLI with `--target-time` and `--keep`: replay stops at the target (the rows committed after it are
not there), the RPO evidence falls back to the server log's last replayed transaction and is labelled
weaker, and the kept environment is recorded (`chaosdrill env list` shows it, `env down` removes it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psycopg
import pytest

from harness.env.local import load_state

from .conftest import make_user_cluster, seed

pytestmark = pytest.mark.timeout(300)


def chaosdrill(*args: str, timeout: float = 280) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli_main", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_no_commit_timestamps_target_time_and_keep(scratch_dir, tmp_path):
    c = make_user_cluster(scratch_dir / "user", track_commit_timestamp=False)
    env_id = None
    try:
        seed(c)
        c.pgbackrest("backup", "--type=full")
        c.psql("insert into orders(item) values ('before the target')", db="shop")
        time.sleep(1.1)
        target = c.psql("select to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')")
        time.sleep(1.1)
        c.psql("insert into orders(item) select 'after the target ' || g from generate_series(1, 50) g", db="shop")
        c.switch_wal()
        toml = tmp_path / "chaosdrill.toml"
        toml.write_text(f'[targets]\nrto = "300s"\nrpo = "1h"\n[restore_test]\namcheck = false\n'
                        f'[restore_test.pgbackrest]\npath = "{c.repo}"\nstanza = "main"\n')
        proc = chaosdrill("restore-test", "-c", str(toml), "--results", str(tmp_path / "results"),
                          "--target-time", target, "--keep")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "kept running" in proc.stdout and "env down" in proc.stdout

        (result_path,) = (tmp_path / "results").glob("*/result.json")
        result = json.loads(result_path.read_text())
        rt = result["measurements"]["restore_test"]
        assert rt["target_time"].startswith(target[:19])
        checks = {ch["name"]: ch for ch in rt["checks"]}
        assert checks["WAL replay stopped at the target time"]["passed"]
        assert rt["replay"].get("stopped_at_target")  # "recovery stopping before commit … time …"
        # no commit timestamps: the newest data comes from the server log, said to be weaker evidence
        assert rt["rpo_strength"] == "weaker", rt
        assert rt["rpo_evidence"] != "newest commit timestamp (track_commit_timestamp)"
        assert "weaker" in (result_path.parent / "report.html").read_text()

        env_id = result["environment"]["id"]
        assert result["environment"]["kept"] is True
        (record,) = [r for r in load_state() if r["id"] == env_id]
        port = record["postgres"]["port"]
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="shop", autocommit=True) as conn:
            items = [r[0] for r in conn.execute("select item from orders where id > 2000")]
        assert items == ["before the target"]  # the 50 rows committed after the target were not replayed

        listed = chaosdrill("env", "list", timeout=60)
        assert env_id in listed.stdout, listed.stdout
        down = chaosdrill("env", "down", env_id, timeout=120)
        assert down.returncode == 0, down.stderr
        assert not [r for r in load_state() if r["id"] == env_id]
        assert env_id not in chaosdrill("env", "list", timeout=60).stdout
        env_id = None
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host="127.0.0.1", port=port, user="postgres", connect_timeout=2)
    finally:
        if env_id:
            chaosdrill("env", "down", env_id, timeout=120)
        c.stop()


def test_sigterm_mid_restore_tears_down_even_with_keep_and_records_aborted(scratch_dir, tmp_path):
    """SIGTERM while the backup is being restored: exit 143, the run recorded as aborted, and the fresh
    environment torn down although --keep was given (an interrupted restore is never kept)."""
    from harness.cleanup import cleanup_all
    from tests.helpers.interrupt import signal_cli_when

    c = make_user_cluster(scratch_dir / "user", track_commit_timestamp=True)
    try:
        seed(c)
        c.pgbackrest("backup", "--type=full")
        toml = tmp_path / "chaosdrill.toml"
        toml.write_text(f'[targets]\nrto = "300s"\n[restore_test]\namcheck = false\n'
                        f'[restore_test.pgbackrest]\npath = "{c.repo}"\nstanza = "main"\n')
        before = {r["id"] for r in load_state()}
        proc = signal_cli_when(["restore-test", "-c", str(toml), "--results", str(tmp_path / "results"), "--keep"],
                               "restoring backup", timeout=120)
        assert proc.returncode == 143, proc.stderr
        assert "interrupted by SIGTERM" in proc.stderr and "kept running" not in proc.stdout
        (result_path,) = (tmp_path / "results").glob("*/result.json")
        result = json.loads(result_path.read_text())
        assert result["verdict"] == "aborted" and result["status"] == "aborted"
        assert result["abort"]["signal"] == "SIGTERM" and result["environment"]["kept"] is False
        assert result["measurements"]["restore_test"]["status"] == "aborted"
        from harness.history import load_history

        [aborted] = load_history(tmp_path / "results").runs  # history and evidence: an aborted restore test
        assert (aborted.kind, aborted.outcome) == ("restore test", "aborted")
        assert aborted.reason.startswith("restore test aborted"), aborted.reason
        assert [r["id"] for r in load_state() if r["id"] not in before] == [], "nothing kept"
        assert cleanup_all() == []
    finally:
        c.stop()
