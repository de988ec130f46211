"""`chaosdrill restore-test` of a user's local pgBackRest repository: a real restore into a fresh
environment, the checks, RTO/RPO, the baseline of table rows, and the repository left untouched."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from harness.config import parse_config
from harness.drill.restore_test import RestoreTestRunner
from harness.env.local import load_state

from .conftest import config_for, tree_digest

pytestmark = pytest.mark.timeout(300)


def by_name(outcome) -> dict[str, dict]:
    return {c["name"]: c for c in outcome.checks}


def test_latest_backup_restored_checked_and_measured(user_cluster, tmp_path):
    before = tree_digest(user_cluster.repo)
    cfg = parse_config(config_for(tmp_path, {
        "pgbackrest": {"path": str(user_cluster.repo), "stanza": "main"},
        "checks": [{"name": "orders present", "database": "shop", "sql": "select count(*) from orders",
                    "expect": "= 2100"},
                   {"name": "customers", "database": "shop", "sql": "select count(*) from customers",
                    "expect": "between 400 and 600"}]}), "test")
    outcome = RestoreTestRunner(cfg).run()
    checks = by_name(outcome)
    assert outcome.verdict.value == "passed", outcome.checks
    assert checks["server starts and reaches consistency"]["passed"]
    replay = checks["WAL replay ended where the archive ends"]
    assert replay["passed"] and "replay end LSN" in replay["detail"]
    assert any(n.startswith("pg_amcheck") and c["passed"] for n, c in checks.items())
    assert checks["data checksum failures PostgreSQL reports"]["passed"]
    assert checks["SQL: orders present"]["passed"]  # the 100 rows committed after the backup replayed
    assert "baseline recorded" in checks["tables: rows and sizes vs the previous restore test"]["detail"]
    m = outcome.measurements
    assert m.rto_s is not None and m.rpo_s is not None
    assert m.rpo_evidence == "newest commit timestamp (track_commit_timestamp)" and m.rpo_strength == "strong"
    assert all(m.steps[s] is not None for s in ("verify", "restore", "start", "checks", "amcheck"))
    result = json.loads((outcome.run_dir / "result.json").read_text())
    assert result["scenario"] == "restore_test"
    rt = result["measurements"]["restore_test"]
    assert rt["tables"]["shop.public.orders"]["rows"] == 2100
    assert rt["replay"]["end_lsn"]
    html = (outcome.run_dir / "report.html").read_text()
    assert "Restore test" in html and "pg_amcheck" in html
    assert tree_digest(user_cluster.repo) == before  # the source repository was only read
    assert not [r for r in load_state() if r["id"] == outcome.env_id]  # torn down

    # the second run compares with the first: a table that shrank beyond the tolerance fails, named
    user_cluster.psql("delete from customers where id > 100", db="shop")
    user_cluster.pgbackrest("backup", "--type=incr")
    second = RestoreTestRunner(cfg).run()
    tables = by_name(second)["tables: rows and sizes vs the previous restore test"]
    assert not tables["passed"]
    assert any("shop.public.customers: 500 → 100 rows" in o for o in tables["objects"])
    assert not by_name(second)["SQL: customers"]["passed"]
    assert second.verdict.value == "failed"

    # both are first-class runs in the history (and so in the evidence pack): kind, backup, checks, steps
    from harness.history import load_history

    first_run, second_run = load_history(tmp_path / "results").runs
    assert (first_run.kind, first_run.outcome, second_run.outcome) == ("restore test", "passed", "failed")
    d = first_run.drill
    assert d["backup_set"] == result["measurements"]["restore_test"]["source"]["id"] and "→" in d["lsn_range"]
    assert d["backup_type"].startswith("pgbackrest") and d["repository"] == str(user_cluster.repo)
    assert d["verified"] is True and {c["name"] for c in d["checks"]} == {c["name"] for c in outcome.checks}
    assert set(d["rto_steps"]) >= {"verify", "restore", "start", "checks", "amcheck"}
    assert first_run.headline["rto"] == pytest.approx(m.rto_s) and first_run.headline["rpo"] == pytest.approx(m.rpo_s)
    assert second_run.reason.startswith("check(s) failed: tables: rows and sizes vs the previous restore test")
    assert second_run.drill["verified"] is False

    # …and the default evidence policy requires them monthly: the pack lists both with their checks
    from harness.evidence.pack import build_pack
    from harness.evidence.period import resolve
    from harness.evidence.policy import load_policy

    policy, source = load_policy(None)
    day = first_run.start.date()
    period = resolve(None, day.isoformat(), (day + timedelta(days=1)).isoformat(), policy.tz)
    ev = build_pack(tmp_path / "results", tmp_path / "pack", policy, source, "", period, pdf=False).evidence
    listed = {d["run_id"]: d for d in ev["drills"]}
    assert set(listed) == {first_run.run_id, second_run.run_id}
    assert listed[first_run.run_id]["kind"] == "restore test" and listed[first_run.run_id]["checks"]
    cover = next(c for c in ev["coverage"] if c["scenario"] == "restore_test")
    assert cover["passed"] == 1 and cover["failed"] == 1
    html = (tmp_path / "pack" / "evidence.html").read_text()
    assert "DR drills, failovers and restore tests" in html and "pg_amcheck" in html
