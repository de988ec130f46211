"""Run history (harness/history.py): every kind of result, older and damaged files, filters, the index cache, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import Targets
from harness.history import INDEX_NAME, history_json, load_history
from tests.helpers.gen_runs import at, drill_run, fault_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    fault_run(root, "db_outage", at("2026-10-02"), seed=1)                                   # passed
    fault_run(root, "db_outage", at("2026-10-09"), seed=2, outage_s=3, targets=Targets(mttr=1))  # failed: MTTR
    fault_run(root, "cache_outage", at("2026-10-10"), seed=3, no_effect=True)                # inconclusive
    drill_run(root, at("2026-10-15"), seed=4)                                                # DR drill passed
    drill_run(root, at("2026-11-15"), seed=5, status="failed")                               # aborted
    drill_run(root, at("2026-11-20"), seed=6, scenario="replica_failover", rto_s=2.3, rpo_s=0.1)
    return root


def _legacy(root: Path) -> None:
    """A result.json as early versions wrote it: no schema_version, host, anchor, versions or health objectives."""
    d = root / "20260901T080000Z-db_outage-0ld001"
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({
        "run_id": d.name, "scenario": "db_outage", "started_at": "2026-09-01T08:00:00", "finished_at": "2026-09-01T08:00:10",
        "verdict": "passed", "measurements": {"fault": {"time_to_detect_s": 0.05, "mttr_s": 5.5}},
        "objectives": [{"name": "time to detect", "target": 60, "achieved": 0.05, "unit": "s", "better": "lower", "passed": True},
                       {"name": "MTTR", "target": 1800, "achieved": 5.5, "unit": "s", "better": "lower", "passed": True}],
        "config": {}, "environment": {"kind": "local"}}))


def _damaged(root: Path) -> dict[str, str]:
    cases = {"truncated": ('{"run_id": "x", "scen', "corrupt JSON"),
             "binary": (b"\xff\xfe\x00garbage", "not UTF-8"),
             "array": ("[]", "not a chaosdrill result"),
             "foreign": (json.dumps({"name": "some other tool", "version": 3}), "missing or bad key 'run_id'"),
             "future": (json.dumps({"schema_version": 99, "run_id": "f", "scenario": "db_outage",
                                    "started_at": "2026-10-01T00:00:00Z", "verdict": "passed"}), "newer than this"),
             "bad-time": (json.dumps({"schema_version": 1, "run_id": "t", "scenario": "db_outage",
                                      "started_at": "yesterday", "verdict": "passed"}), "not an ISO 8601 time"),
             "bad-verdict": (json.dumps({"schema_version": 1, "run_id": "v", "scenario": "db_outage",
                                         "started_at": "2026-10-01T00:00:00Z", "verdict": "great"}), "verdict 'great'")}
    for name, (content, _) in cases.items():
        d = root / f"zz-{name}"
        d.mkdir(parents=True)
        (d / "result.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    (root / "zz-dir-result").mkdir()
    (root / "zz-dir-result" / "result.json").mkdir()
    return {f"zz-{k}": v[1] for k, v in cases.items()} | {"zz-dir-result": "cannot read"}


def test_every_kind_of_run_is_found_with_its_outcome_and_headline(results: Path) -> None:
    hist = load_history(results)
    assert not hist.skipped
    got = [(r.scenario, r.kind, r.verdict, r.outcome) for r in hist.runs]
    assert got == [("db_outage", "fault", "passed", "passed"), ("db_outage", "fault", "failed", "failed"),
                   ("cache_outage", "fault", "inconclusive", "not measured"),
                   ("dr_restore", "DR drill", "passed", "passed"), ("dr_restore", "DR drill", "failed", "aborted"),
                   ("replica_failover", "failover", "passed", "passed")]
    passed, failed = hist.runs[0], hist.runs[1]
    assert 1.5 < passed.headline["mttr"] < 2.6 and passed.headline["time_to_detect"] < 0.2
    assert "MTTR missed" in failed.reason
    drill = hist.runs[3]
    assert drill.headline["rto"] == pytest.approx(4.2) and drill.headline["rpo"] == pytest.approx(1.0)
    assert drill.drill["backup_set"].endswith("I") and "→" in drill.drill["lsn_range"] and drill.drill["wal_range"]
    assert [c["passed"] for c in drill.drill["checks"]] == [True, True, True]
    assert set(drill.drill["rto_steps"]) == {"restore", "start", "verify", "serve"}
    assert "drill failed" in hist.runs[4].reason and "pgbackrest restore exited 1" in hist.runs[4].reason
    assert hist.runs[5].drill["backup_set"] is None
    assert passed.versions["pgbackrest"] == "pgBackRest 2.45" and passed.versions["chaosdrill"]


def test_older_results_still_load_and_damaged_files_are_skipped_with_a_reason(results: Path) -> None:
    _legacy(results)
    expected = _damaged(results)
    hist = load_history(results)
    legacy = hist.runs[0]
    assert legacy.run_id.endswith("0ld001") and legacy.schema_version is None and legacy.outcome == "passed"
    assert legacy.started_at == "2026-09-01T08:00:00+00:00", "a naive time is UTC"
    assert legacy.headline["mttr"] == 5.5 and legacy.versions == {}
    reasons = {s.path: s.reason for s in hist.skipped}
    assert set(reasons) == set(expected)
    for path, needle in expected.items():
        assert needle in reasons[path], (path, reasons[path])
    assert len(hist.runs) == 7


def test_filters(results: Path) -> None:
    hist = load_history(results)
    assert [r.scenario for r in hist.select(scenario="dr_restore")] == ["dr_restore", "dr_restore"]
    assert len(hist.select(since=at("2026-10-10", 0), until=at("2026-11-16", 0))) == 3
    assert [r.outcome for r in hist.select(verdict="failed")] == ["failed", "aborted"], "a verdict or an outcome"
    assert [r.scenario for r in hist.select(verdict="aborted")] == ["dr_restore"]


def test_the_index_is_a_cache_that_is_rebuilt(results: Path) -> None:
    first = load_history(results)
    index = results / INDEX_NAME
    assert index.is_file() and oct(index.stat().st_mode & 0o777) == "0o600"
    index.write_text("{damaged")
    assert [r.run_id for r in load_history(results).runs] == [r.run_id for r in first.runs]
    # a result changed after it was indexed is re-read
    target = results / first.runs[0].path / "result.json"
    data = json.loads(target.read_text())
    data["verdict"] = "failed"
    target.write_text(json.dumps(data))
    os.utime(target, ns=(1, 1))
    assert load_history(results).runs[0].verdict == "failed"
    index.unlink()
    assert len(load_history(results, use_index=False).runs) == 6 and not index.exists()


def test_reading_in_two_processes_gives_the_same_history_and_index(results: Path, monkeypatch) -> None:
    """Many files to read → half in a forked process; the runs, the skipped files (in order) and the index
    are the same as read in one, and `raw_between` hands back the very bytes of the runs in the window."""
    import harness.history as history

    reasons = _damaged(results)
    serial = load_history(results, use_index=False)
    index = results / INDEX_NAME
    monkeypatch.setattr(history, "PARALLEL_MIN", 10**9)
    load_history(results)
    one = index.read_bytes()
    index.unlink()
    monkeypatch.setattr(history, "PARALLEL_MIN", 1)
    raw: dict = {}
    both = load_history(results, raw_between=(at("2026-10-09", 0), at("2026-11-16", 0)), raw=raw)
    assert both.runs == serial.runs and both.skipped == serial.skipped and index.read_bytes() == one
    assert {s.path for s in both.skipped} == set(reasons)
    assert sorted(raw) == sorted(r.path for r in both.select(since=at("2026-10-09", 0), until=at("2026-11-16", 0)))
    for rel, (summary, data) in raw.items():
        assert data == (results / rel / "result.json").read_bytes() and summary.path == rel
    assert load_history(results, raw_between=(at("2026-01-01", 0), at("2027-01-01", 0)), raw=raw).runs == serial.runs
    assert len(raw) == 4, "from the index: nothing read, no bytes handed back"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"COLUMNS": "200", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "harness.cli_main", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)


def test_history_cli_table_json_and_bad_input(results: Path, tmp_path: Path) -> None:
    _damaged(results)
    proc = _cli("history", "--results", str(results), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "dr_restore" in proc.stdout and "aborted" in proc.stdout and "6 run(s) of 6" in proc.stdout
    assert "skipped: zz-truncated/result.json: corrupt JSON" in proc.stdout and "Traceback" not in proc.stderr
    proc = _cli("history", "--results", str(results), "--json", "--scenario", "db_outage", "--since", "2026-10-01",
                "--until", "2026-10-02", cwd=tmp_path)
    data = json.loads(proc.stdout)
    assert data["history_schema_version"] == 1 and data["count"] == 1
    run = data["runs"][0]
    assert set(run) == {"run_id", "scenario", "kind", "started_at", "finished_at", "verdict", "outcome", "reason",
                        "headline", "path", "schema_version", "backup_set"}
    assert set(run["headline"]) == {"time_to_detect", "mttr", "rto", "rpo", "rows_lost"}
    assert {s["path"] for s in data["skipped"]} >= {"zz-truncated", "zz-binary"}
    assert data == history_json(load_history(results), load_history(results).select(
        scenario="db_outage", since=at("2026-10-01", 0), until=at("2026-10-03", 0))) | {"results": str(results)}
    for args, needle in ((["--verdict", "great"], "--verdict: 'great' is not a verdict"),
                         (["--since", "last week"], "--since: 'last week' is not a date"),
                         (["--results", str(tmp_path / "nope")], "no such directory")):
        proc = _cli("history", "--results", str(results), *args, cwd=tmp_path)
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
