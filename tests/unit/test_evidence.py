"""Evidence packs (harness/evidence): a period with passing, failing, aborted, not-measured and missing drills.

The expected verdicts, coverage, overdue flags, deviations, remediation, score, trend and
aggregates are worked out here from the definitions (docs/evidence.md), not from the code's output.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.errors import ConfigError, TargetMissed
from harness.evidence.pack import MANIFEST, build_pack
from harness.evidence.period import resolve
from harness.evidence.policy import parse_policy
from harness.evidence.remediation import load_remediation
from harness.evidence.sign import sign, verify
from tests.helpers.gen_runs import at, drill_run, fault_run

NOW = datetime(2027, 1, 5, 12, tzinfo=UTC)
POLICY = {
    "organisation": {"name": "Test <Org>", "time_zone": "UTC"},
    "scope": {"systems": ["orders"], "assets": ["orders db"]},
    "drills": {"db_outage": {"every": "weekly"}, "dr_restore": {"every": "monthly"},
               "replica_failover": {"every": "quarterly"}, "cache_outage": {"every": "30d"}},
    "objectives": {"mttr": "3s", "rto": "4h", "rpo": "15min", "time_to_detect": "1min"},
    "participants": [{"name": "SRE", "role": "runs drills"}],
    "approver": {"name": "Head of Infra", "role": "approver"},
    "controls": {k: {"framework": "test", "title": k, "asks": "a", "why": "w", "drills": d, "objectives": ["mttr"]}
                 for k, d in {"C-backup": ["dr_restore"], "C-outage": ["db_outage"], "C-failover": ["replica_failover"],
                              "C-cache": ["cache_outage"], "C-all": ["dr_restore", "db_outage"]}.items()},
}
REMEDIATION = """
[[item]]
id = "REM-1"
finding = "restore runbook is out of date"
owner = "DBA"
opened = 2026-09-01
due = 2026-10-15
status = "open"

[[item]]
id = "REM-2"
finding = "closed long ago"
owner = "DBA"
opened = 2026-07-01
due = 2026-08-01
status = "done"
closed = 2026-08-30

[[item]]
id = "REM-3"
finding = "alert routing"
owner = "SRE"
opened = 2026-10-20
due = 2026-11-20
status = "done"
closed = 2026-11-01
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("ev")
    res = tmp / "results"
    # previous quarter (Q3)
    drill_run(res, at("2026-08-01"), scenario="replica_failover", rto_s=2.0, rpo_s=0.1, seed=1)
    fault_run(res, "network_latency", at("2026-09-05"), outage_s=5.0, seed=2)   # policy: MTTR > 3 s → failed
    fault_run(res, "network_latency", at("2026-09-06"), outage_s=1.0, seed=3)   # fixed the next day
    fault_run(res, "db_outage", at("2026-09-10"), outage_s=1.0, seed=4)
    fault_run(res, "db_outage", at("2026-09-20"), outage_s=4.0, seed=5)          # failed, still failing at Q3's end
    drill_run(res, at("2026-09-25"), status="failed", seed=6)                    # aborted DR drill
    # this quarter (Q4)
    weekly = ["2026-10-01", "2026-10-08", "2026-10-15", "2026-10-22", "2026-10-29", "2026-11-05", "2026-11-12",
              "2026-11-19", "2026-11-26"]
    for i, day in enumerate(weekly):
        fault_run(res, "db_outage", at(day), outage_s=2.0, seed=10 + i)
    fault_run(res, "db_outage", at("2026-12-15"), outage_s=4.0, seed=30)         # failed against the policy
    for i, day in enumerate(["2026-10-05", "2026-11-04", "2026-12-04", "2026-12-28"]):
        drill_run(res, at(day), rto_s=4.0 + i, rpo_s=1.0 + i / 10, seed=40 + i)
    drill_run(res, at("2026-12-10"), rpo_measured=False, seed=50)                # inconclusive
    fault_run(res, "cache_outage", at("2026-11-11"), no_effect=True, seed=60)    # not measured
    rem = tmp / "remediation.toml"
    rem.write_text(REMEDIATION)
    policy = parse_policy(POLICY, "test policy")
    period = resolve("2026-Q4", None, None, policy.tz)
    result = build_pack(res, tmp / "pack", policy, "test policy", json.dumps(POLICY), period,
                        items=load_remediation(rem), remediation_source=str(rem), now=NOW, pdf=False)
    return {"res": res, "pack": result.path, "ev": result.evidence, "tmp": tmp, "policy": policy, "period": period}


def test_control_verdicts_and_score(world) -> None:
    ev = world["ev"]
    status = {c["id"]: c["status"] for c in ev["controls"]}
    assert status == {"C-backup": "met", "C-outage": "not met", "C-failover": "expired", "C-cache": "no evidence",
                      "C-all": "not met"}
    assert ev["score"]["value"] == (100 + 50 + 75 + 0 + 50) / 5 == 55.0
    outage = next(c for c in ev["controls"] if c["id"] == "C-outage")
    assert "failed" in outage["reason"] and "MTTR" in outage["reason"] and "above the policy target" in outage["reason"]
    # trend: Q1, Q2 nothing (0); Q3 judged at its end: db_outage failed, dr_restore aborted (50 each),
    # replica_failover passed 1 Aug + 92 d ≥ 1 Oct (100), cache_outage nothing (0), C-all 50
    assert [(t["period"], t["score"]) for t in ev["score"]["trend"]] == [
        ("2026-Q1", 0.0), ("2026-Q2", 0.0), ("2026-Q3", (50 + 50 + 100 + 0 + 50) / 5), ("2026-Q4", 55.0)]
    assert ev["summary"]["score_delta"] == 5.0 and ev["summary"]["controls_met"] == 1


def test_coverage_and_overdue_flags(world) -> None:
    cov = {c["scenario"]: c for c in world["ev"]["coverage"]}
    db = cov["db_outage"]
    assert (db["runs"], db["passed"], db["failed"], db["expected_runs"]) == (10, 9, 1, math.ceil(92 / 7))
    assert db["last_pass"].startswith("2026-11-26") and db["next_due"].startswith("2026-12-03") and db["overdue"]
    assert db["lapses"] == 2, "10 Sep → 1 Oct and 26 Nov → 1 Jan are longer than a week"
    dr = cov["dr_restore"]
    assert (dr["runs"], dr["passed"], dr["inconclusive"], dr["expected_runs"]) == (5, 4, 1, 3)
    assert dr["status"] == "met" and not dr["overdue"] and dr["next_due"].startswith("2027-01-28")
    rf = cov["replica_failover"]
    assert rf["runs"] == 0 and rf["overdue"] and rf["next_due"].startswith("2026-11-01") and rf["status"] == "expired"
    cache = cov["cache_outage"]
    assert cache["status"] == "no evidence" and cache["not measured"] == 1 and cache["last_pass"] is None


def test_deviations_and_remediation_carry_over(world) -> None:
    ev = world["ev"]
    dev = {(d["started_at"][:10], d["outcome"]) for d in ev["deviations"]}
    assert dev == {("2026-12-15", "failed"), ("2026-12-10", "inconclusive"), ("2026-11-11", "not measured")}
    assert all(d["reason"] != "—" for d in ev["deviations"])
    items = {r["id"]: r for r in ev["remediation"]}
    assert set(items) == {"REM-1", "REM-3", "PROPOSED-dr_restore-2026-Q3", "PROPOSED-db_outage-2026-Q3",
                          "PROPOSED-db_outage-2026-Q4"}, "REM-2 closed before the period; network_latency was fixed"
    assert items["REM-1"]["carried_over"] and items["REM-1"]["overdue"]
    assert not items["REM-3"]["carried_over"] and items["REM-3"]["status"] == "done"
    assert items["PROPOSED-dr_restore-2026-Q3"]["carried_over"] and items["PROPOSED-dr_restore-2026-Q3"]["status"] == "proposed"
    new = items["PROPOSED-db_outage-2026-Q4"]
    assert not new["carried_over"] and len(new["runs"]) == 1 and new["due"] == "2027-01-14"


def _nearest(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[max(0, math.ceil(q / 100 * len(v)) - 1)]


def test_objectives_aggregated_with_the_trend(world) -> None:
    ev = world["ev"]
    runs = {r["run_id"]: r for r in ev["runs"]}
    q4 = [r["headline"]["mttr"] for r in runs.values() if r["scenario"] == "db_outage"]
    q3 = []
    for d in world["res"].iterdir():
        if d.is_dir() and "db_outage" in d.name and d.name.startswith("202609"):
            q3.append(json.loads((d / "result.json").read_text())["measurements"]["fault"]["mttr_s"])
    row = next(o for o in ev["objectives"] if o["scenario"] == "db_outage" and o["objective"] == "MTTR")
    assert row["count"] == 10 and row["measured"] == 10
    assert row["median"] == pytest.approx(statistics.median(q4))
    assert row["p95"] == pytest.approx(_nearest(q4, 95)) and row["worst"] == pytest.approx(max(q4))
    assert row["pass_rate"] == pytest.approx(sum(v <= 3.0 for v in q4) / 10) and row["target"] == 3.0
    assert row["prev_median"] == pytest.approx(statistics.median(q3))
    assert row["delta"] == pytest.approx(statistics.median(q4) - statistics.median(q3))
    assert row["direction"] == "better"
    rto = next(o for o in ev["objectives"] if o["scenario"] == "dr_restore" and o["key"] == "rto")
    assert rto["median"] == pytest.approx(5.0) and rto["worst"] == pytest.approx(7.0) and rto["direction"] == "new"
    pts = [p for p in ev["objective_points"] if p["key"] == "rto" and p["scenario"] == "dr_restore"]
    assert len(pts) == 5 and all(p["started_at"].startswith("2026-1") for p in pts)


def test_pack_contents_and_json_schema(world) -> None:
    pack, ev = world["pack"], world["ev"]
    assert ev["schema_version"] == 1 and ev["period"]["label"] == "2026-Q4" and ev["period"]["complete"]
    for key in ("generated_at", "organisation", "scope", "versions", "participants", "approver", "summary", "controls",
                "coverage", "objectives", "objective_points", "drills", "deviations", "remediation", "score", "runs",
                "skipped", "pdf", "policy"):
        assert key in ev, key
    assert ev["summary"]["runs"] == 16 and len(list((pack / "runs").iterdir())) == 16
    manifest = (pack / MANIFEST).read_text().splitlines()
    names = {line[66:] for line in manifest}
    assert {"evidence.html", "evidence.json"} <= names and len(names) == 2 + 16
    for r in ev["runs"]:
        copied = pack / r["files"]["result"]
        assert copied.read_bytes() == (world["res"] / copied.name.removesuffix(".result.json") / "result.json").read_bytes()
    drills = [d for d in ev["drills"] if d["scenario"] == "dr_restore"]
    assert len(drills) == 5 and all(d["backup_set"] and "→" in d["lsn_range"] and d["checks"] for d in drills)
    versions = {v["component"]: v for v in ev["versions"]}
    assert versions["pgBackRest"]["versions"][0]["version"] == "pgBackRest 2.45" and versions["chaosdrill"]["recorded"]
    html = (pack / "evidence.html").read_text()
    assert "Test &lt;Org&gt;" in html, "policy text is escaped"
    for heading in ("Summary verdict per control", "Coverage of the required drills", "Objectives vs achieved",
                    "DR drills, failovers and restore tests", "Deviations", "Remediation", "Resilience score", "Sign-off",
                    "Scope and asset versions", "Participants, roles and approver"):
        assert heading in html, heading
    assert "OVERDUE" in html and "carried over" in html and "http://" not in html.replace("http://www.w3.org", "")
    assert "no evidence.pdf: not asked for" in html


def test_a_pack_from_the_index_cache_is_the_pack_from_the_files_and_holds_copies(world, tmp_path) -> None:
    """The first build read every result.json (and wrote the index); a build from the index re-reads the period's
    files: the same pack byte for byte. The runs are copies (own inodes), not links into the results directory."""
    from harness.history import INDEX_NAME

    assert (world["res"] / INDEX_NAME).is_file()
    again = build_pack(world["res"], tmp_path / "again", world["policy"], "test policy", json.dumps(POLICY),
                       world["period"], items=load_remediation(world["tmp"] / "remediation.toml"),
                       remediation_source=str(world["tmp"] / "remediation.toml"), now=NOW, pdf=False)
    files = sorted(p.relative_to(world["pack"]) for p in world["pack"].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again.path) for p in again.path.rglob("*") if p.is_file())
    for rel in files:
        assert (world["pack"] / rel).read_bytes() == (again.path / rel).read_bytes(), rel
    for r in world["ev"]["runs"]:
        copied = world["pack"] / r["files"]["result"]
        source = world["res"] / copied.name.removesuffix(".result.json") / "result.json"
        assert copied.stat().st_nlink == 1 and not copied.samefile(source)


def test_a_run_file_that_cannot_be_written_fails_the_build_with_its_error(world, tmp_path, monkeypatch) -> None:
    """The runs are written by a background thread: its error reaches the caller, and the thread ends."""
    import threading

    import harness.evidence.pack as pack

    real = pack._write

    def failing(path, data, digests=None):
        if str(path).endswith(".result.json"):
            raise OSError(28, "No space left on device")
        return real(path, data, digests)

    monkeypatch.setattr(pack, "_write", failing)
    with pytest.raises(OSError, match="No space left"):
        build_pack(world["res"], tmp_path / "full", world["policy"], "test policy", json.dumps(POLICY),
                   world["period"], now=NOW, pdf=False)
    assert not (tmp_path / "full" / MANIFEST).exists()
    assert not [t for t in threading.enumerate() if t.name == "evidence-pack-writer"]


def test_verify_catches_a_changed_byte_an_added_and_a_removed_file(world, tmp_path) -> None:
    import shutil

    pack = tmp_path / "pack"
    shutil.copytree(world["pack"], pack)
    assert verify(pack).ok
    approval = sign(pack, "Jane Auditor", role="CISO", note="Q4 reviewed", now=NOW)
    assert approval["manifest_sha256"] and verify(pack).signoffs[0]["matches"]
    run = sorted((pack / "runs").iterdir())[0]
    data = bytearray(run.read_bytes())
    data[10] ^= 1
    run.write_bytes(bytes(data))
    (pack / "runs" / "extra.txt").write_text("added later")
    (pack / "evidence.json").unlink()
    rep = verify(pack)
    assert rep.changed == [f"runs/{run.name}"] and rep.added == ["runs/extra.txt"]
    assert rep.removed == ["evidence.json"] and not rep.ok
    with pytest.raises(TargetMissed, match="refusing to sign"):
        sign(pack, "Someone")
    # a rewritten manifest no longer matches the sign-off
    (pack / MANIFEST).write_text((pack / MANIFEST).read_text() + "0" * 64 + "  other\n")
    assert not verify(pack).signoffs[0]["matches"]


def test_verify_and_sign_cli(world, tmp_path) -> None:
    import shutil

    pack = tmp_path / "pack"
    shutil.copytree(world["pack"], pack)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "harness.cli_main", "evidence", *args], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)

    proc = cli("sign", str(pack), "--by", "Jane", "--role", "CISO")
    assert proc.returncode == 0 and "signed by Jane" in proc.stdout
    assert cli("verify", str(pack)).returncode == 0
    (pack / "evidence.html").write_text("edited")
    proc = cli("verify", str(pack))
    assert proc.returncode == 3 and "changed: evidence.html" in proc.stdout and "ALTERED" in proc.stdout
    proc = cli("verify", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "not an evidence pack" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_policies_each_give_their_one_line_error() -> None:
    import tomllib

    from harness.evidence.policy import load_policy

    folder = Path(__file__).resolve().parents[1] / "fixtures" / "bad_policy"
    cases = tomllib.loads((folder / "expected.toml").read_text())["case"]
    assert len(cases) >= 10
    for case in cases:
        with pytest.raises(ConfigError) as info:
            load_policy(folder / case["file"])
        message = str(info.value)
        assert case["expect"] in message and "\n" not in message, (case["file"], message)
