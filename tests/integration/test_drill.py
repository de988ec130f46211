"""The DR drill end to end on real PostgreSQL/pgBackRest/Redis/app: RPO bounded by archive_timeout,
RTO decomposed, tampering caught, bad input refused before the disaster with the source untouched."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from types import SimpleNamespace

import psycopg
import pytest
import redis

from harness.config import parse_config
from harness.drill import (
    Disaster,
    DrillHooks,
    DrillRefused,
    DrillRunner,
    DrillStatus,
    Preflight,
    Restore,
    Serve,
    Snapshot,
    Start,
    TakeBackup,
    Verify,
    Warmup,
)
from harness.env.local import load_state
from harness.measure import Verdict
from tests.helpers.scenarios import outcomes, run_scenarios

pytestmark = pytest.mark.timeout(180)


def config(tmp_path, **drill):
    return parse_config({"run": {"results_dir": str(tmp_path / "results")}, "load": {"users": 2},
                         "targets": {"rpo": "2s", "rto": "120s"},
                         "drill": {"warmup": 0.5, "hold": 2, "backup_interval": 0.5, "archive_timeout": "1s",
                                   **drill}})


QUICK_DRILL = """
[load]
users = 2
[targets]
rpo = "2s"
rto = "120s"
[drill]
warmup = 0.5
hold = 2
backup_interval = 0.5
archive_timeout = "1s"
"""


def short_plan(set_id: str = "latest"):
    return (Warmup(0.3), TakeBackup("full"), Preflight(set_id), Snapshot(), Disaster(False, 0.0), Restore(), Start(),
            Verify(), Serve(20))


def leftover_envs(before: set[str]) -> set[str]:
    return {r["id"] for r in load_state()} - before


def test_drill_end_to_end_rpo_within_archive_timeout(tmp_path):
    """Through the scenario file (scenarios/test_dr_restore.py and the plugin's chaos_drill, as
    `pytest scenarios/ -m dr_restore` runs it), with QUICK_DRILL's timings."""
    before = {r["id"] for r in load_state()}
    proc = run_scenarios(tmp_path, QUICK_DRILL, "-m", "dr_restore", timeout=170)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outcomes(tmp_path) == {"test_dr_restore": "passed"}
    (run_dir,) = (tmp_path / "chaosdrill-results").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    m = SimpleNamespace(**result["measurements"]["drill"])
    assert result["measurements"]["status"] == "completed", result["measurements"]["error"]
    assert result["verdict"] == "passed", [o for o in result["objectives"] if not o["passed"]]
    cfg = parse_config(tomllib.loads(QUICK_DRILL))
    # RPO ≤ archive_timeout + 1 s, and rows lost agree with it (one canary row per 100 ms, ±2 in flight)
    assert m.rpo_s is not None and m.rpo_s <= cfg.drill.archive_timeout + 1.0
    assert 0 <= m.rows_lost <= math.ceil(m.rpo_s / cfg.drill.canary_interval) + 2
    assert m.rows_restored == m.rows_acknowledged - m.rows_lost
    assert all(m.steps[s] is not None and m.steps[s] >= 0 for s in ("restore", "start", "verify", "serve"))
    assert m.rto_s >= sum(m.steps.values()) - 0.5
    used = result["measurements"]["backup_set"]
    assert used["type"] == "incr" and used["lsn_range"] and used["parts"]["postgres"]["label"]
    assert used["id"] == result["measurements"]["backups"][-1]["id"]
    checks = result["measurements"]["verification"]["checks"]
    assert result["measurements"]["verification"]["passed"] is True
    redis_check = checks["redis keys equal the backup's (count and digest)"]
    assert redis_check["passed"] and redis_check["keys_at_backup"] >= 20  # the seeded orders are cached
    assert redis_check["keys_restored"] == redis_check["keys_at_backup"]
    assert redis_check["digest_restored"] == redis_check["digest_at_backup"] == used["parts"]["redis"]["keys_digest"]
    assert checks["redis AOF on after the restore"] == {"passed": True, "appendonly": "yes"}
    # the integrity checks the restore test runs too (harness/drill/checks.py)
    assert checks["server starts and reaches consistency"]["passed"]
    amcheck = checks["pg_amcheck: heap and btree of every database"]
    assert amcheck["passed"] and amcheck["detail"] == f"no corruption found ({amcheck['duration_s']:.2f} s)"
    assert amcheck["exit"] == 0 and 0 < amcheck["duration_s"] < m.steps["verify"]  # its facts are kept
    # files and configuration are parts of the set too, restored into the fresh environment
    assert set(used["parts"]) == {"postgres", "redis", "files:uploads", "config"}
    uploads = checks["files:uploads equal the backup's SHA-256 manifest"]
    assert uploads["passed"] and uploads["files"] == uploads["restored"] == 20 + 1 + 2  # receipts, logo, 2 batches
    assert "chaosdrill-fresh-" in uploads["root"] and "drill-src" not in uploads["root"]
    conf = checks["config equal the backup's SHA-256 manifest"]
    assert conf["passed"] and conf["files"] == 1
    assert [b["parts"]["files:uploads"]["files"] for b in result["measurements"]["backups"]] == [22, 23]
    assert (run_dir / "timeline.csv").read_text().count("canary.ack") == m.rows_acknowledged
    html = (run_dir / "report.html").read_text()
    assert "Backup set used" in html and used["lsn_range"].split(" ")[0] in html and "Recovery steps" in html
    assert not leftover_envs(before)


def test_drill_catches_a_tampered_restore(tmp_path):
    def tamper(fresh):
        with psycopg.connect(fresh.postgres.dsn, autocommit=True) as conn:
            conn.execute("UPDATE orders SET amount = amount + 1 WHERE id = (SELECT min(id) FROM orders)")
        r = redis.Redis(port=fresh.redis.port)
        r.delete("order:2")
        r.set("order:3", "tampered", keepttl=True)
        uploads = fresh.base / "files" / "uploads"
        (uploads / "receipts" / "order-0005.txt").write_text("forged\n")
        (uploads / "logo.bin").unlink()
        (uploads / "planted.txt").write_text("not in the backup\n")
        (conf,) = (fresh.base / "config").rglob("app.json")
        conf.write_text(conf.read_text().replace("breaker", "BREAKER"))

    cfg = config(tmp_path, load=False)
    outcome = DrillRunner(cfg, tmp_path / "results", plan=short_plan(), hooks=DrillHooks(before_verify=tamper)).run()
    assert outcome.status is DrillStatus.DEVIATED
    assert outcome.verdict is Verdict.FAILED
    check = outcome.verification["checks"]["orders subset of snapshot"]
    assert check["passed"] is False and check["changed"] == [1]
    cache = outcome.verification["checks"]["redis keys equal the backup's (count and digest)"]
    assert cache["passed"] is False and cache["missing"] == ["order:2"] and cache["changed"] == ["order:3"]
    assert cache["keys_restored"] == cache["keys_at_backup"] - 1
    files = outcome.verification["checks"]["files:uploads equal the backup's SHA-256 manifest"]
    assert files["passed"] is False and files["missing"] == ["logo.bin"]
    assert files["changed"] == ["receipts/order-0005.txt"] and files["unexpected"] == ["planted.txt"]
    conf = outcome.verification["checks"]["config equal the backup's SHA-256 manifest"]
    assert conf["passed"] is False and len(conf["changed"]) == 1 and conf["changed"][0].endswith("config/app.json")
    assert outcome.measurements.verified is False and outcome.measurements.rto_s is None
    assert outcome.measurements.t_serving_ns is None  # never served a restore that differs


def test_non_empty_restore_target_is_refused_and_the_source_untouched(tmp_path):
    seen = {}

    def clutter(fresh):
        fresh.postgres.data.mkdir(parents=True)
        (fresh.postgres.data / "someone-elses-file").write_text("keep me")

    class Spy(DrillRunner):
        def _preflight(self, st, set_id):
            try:
                return super()._preflight(st, set_id)
            except DrillRefused:
                seen["running"] = st.source.postgres.running()
                seen["orders"] = int(st.source.postgres.psql("select count(*) from orders"))
                raise

    before = {r["id"] for r in load_state()}
    messages = []
    with pytest.raises(DrillRefused, match="is not empty") as err:
        Spy(config(tmp_path, load=False), tmp_path / "results", plan=short_plan(), progress=messages.append,
            hooks=DrillHooks(after_fresh=clutter)).run()
    assert "\n" not in str(err.value)
    assert seen == {"running": True, "orders": 20}
    assert not any("DISASTER" in m for m in messages)
    assert not leftover_envs(before)


def test_a_missing_pg_amcheck_refuses_the_drill_before_the_disaster(tmp_path):
    """`[drill] amcheck` on, and the binaries the restored copy would run with have no pg_amcheck: one
    line in the preflight, while the source still runs, instead of a failed check after the disaster."""
    bindir = tmp_path / "bin"
    bindir.mkdir()

    def without_amcheck(fresh):
        for tool in fresh.postgres.bindir.iterdir():
            if tool.name != "pg_amcheck":
                (bindir / tool.name).symlink_to(tool)
        fresh.postgres.bindir = bindir

    before = {r["id"] for r in load_state()}
    messages = []
    with pytest.raises(DrillRefused, match=r"pg_amcheck cannot check the restored copy: .*pg_amcheck not found.*"
                                           r"\[drill\] amcheck = false") as err:
        DrillRunner(config(tmp_path, load=False), tmp_path / "results", plan=short_plan(), progress=messages.append,
                    hooks=DrillHooks(after_fresh=without_amcheck)).run()
    assert "\n" not in str(err.value)
    assert not any("DISASTER" in m for m in messages)
    assert not leftover_envs(before)


def test_unknown_backup_id_is_one_clear_line_exit_2(tmp_path):
    (tmp_path / "c.toml").write_text(
        f'[run]\nresults_dir = "{tmp_path / "results"}"\n[drill]\nwarmup = 0.2\nhold = 0.2\nbackups = ["full"]\n'
        'load = false\n')
    proc = subprocess.run([sys.executable, "-m", "harness.cli_main", "drill", "-c", str(tmp_path / "c.toml"),
                           "--backup-id", "20990101-000000-000000F"], capture_output=True, text=True, timeout=150)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and "20990101-000000-000000F" in lines[0], proc.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
