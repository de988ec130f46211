"""Repeats with statistics (harness/series.py) and regression alarms (harness/baseline.py).

Statistics are checked against an independent computation (numpy) on the samples series.json
stores; regression against synthetic histories written by the real result writer
(harness.results.write_run) with known distributions: regressed, passed, not enough history —
through the CLI's series step, the --json summary (its JSON Schema) and JUnit.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import numpy as np
import pytest

from harness.baseline import compare_objective, min_p_value
from harness.ci_output import SUMMARY_SCHEMA, junit_xml, summary
from harness.cli import _series
from harness.config import parse_config
from harness.experiment import RunOutcome
from harness.history import load_history
from harness.measure import Objective, Verdict
from harness.results import RunRecord, write_run
from harness.series import build_series, ci95_median, objective_stats
from harness.timeline import Timeline

CASE = "test_db_outage[kill]"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def write(results: Path, i: int, mttr: float, *, case: str = CASE, verdict: str | None = None,
          availability: float = 1.0) -> RunOutcome:
    """One db_outage run through the real writer: MTTR (target 30 s) and availability after recovery."""
    started = T0 + timedelta(minutes=10 * i)
    objectives = [Objective.judge("MTTR", 30.0, mttr, "s"),
                  Objective.judge("availability after recovery", 0.99, availability, "ratio", "higher")]
    v = verdict or ("passed" if all(o.passed for o in objectives) else "failed")
    run_id = f"{started:%Y%m%dT%H%M%SZ}-db_outage-{i:06x}"
    record = RunRecord(run_id=run_id, scenario="db_outage", started_at=started.isoformat(),
                       finished_at=(started + timedelta(seconds=40)).isoformat(), verdict=v,
                       objectives=[o.__dict__ for o in objectives], measurements={"fault": {"mttr_s": mttr}},
                       config={}, environment={"kind": "local"}, case=case,
                       status="aborted" if v == "aborted" else "completed")
    run_dir = write_run(results / run_id, record, Timeline(anchor_wall=started)).parent
    return RunOutcome(run_id, run_dir, None, Verdict(v), objectives, "db_outage", case)


# --- statistics -------------------------------------------------------------------------------

def test_statistics_match_an_independent_computation(tmp_path: Path) -> None:
    rnd = random.Random(7)
    outcomes = [write(tmp_path, i, rnd.lognormvariate(1.6, 0.4)) for i in range(12)]
    s = build_series("s1", outcomes, "all", 12)
    o = next(x for x in s.objectives if x["name"] == "MTTR")
    stored = np.array([json.loads((oc.run_dir / "result.json").read_text())["objectives"][0]["achieved"]
                       for oc in outcomes])
    assert o["samples"] == pytest.approx(list(stored))
    assert o["median"] == pytest.approx(float(np.median(stored)))
    assert o["p95"] == pytest.approx(float(np.percentile(stored, 95, method="inverted_cdf")))  # nearest rank
    assert o["worst"] == pytest.approx(float(stored.max()))
    # an independent percentile bootstrap of the median (own resampling, other seed): close to scipy's
    rng = np.random.default_rng(1)
    medians = np.median(rng.choice(stored, size=(20000, stored.size), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    spread = stored.max() - stored.min()
    assert o["ci95"][0] == pytest.approx(low, abs=0.05 * spread)
    assert o["ci95"][1] == pytest.approx(high, abs=0.05 * spread)
    assert o["ci95"][0] <= o["median"] <= o["ci95"][1]
    # availability: higher is better, so worst is the minimum and p95 the 5th percentile
    a = next(x for x in s.objectives if x["name"] == "availability after recovery")
    assert a["worst"] == 1.0 and a["p95"] == 1.0 and a["ci95"] == [1.0, 1.0]


def test_three_repeats_ci_is_min_max_and_one_sample_has_none() -> None:
    assert ci95_median([4.0, 9.0, 5.0]) == [4.0, 9.0]  # bootstrap medians of 3 values: P(min) = 7/27 > 2.5 %
    assert ci95_median([4.0]) is None
    # scipy's interpolation between two equal bootstrap medians can land an ulp off a sample
    for values in ([2.3936213740697965, 2.5500299735722884, 4.0119267942591526],
                   [0.9412277840160636, 1.8251119936626135, 3.37776033996447], [2.10556879, 2.2, 2.303685415]):
        assert ci95_median(values) == [min(values), max(values)]


@pytest.mark.parametrize(("rule", "values", "expected"), [
    ("all", [10, 12, 31], False),      # one repeat over the 30 s target
    ("p95", [10, 12, 31], False),      # nearest-rank p95 of 3 is the max
    ("p95", [10] * 19 + [31], True),   # 1 of 20 over: p95 (the 19th) meets it
    ("all", [10] * 19 + [31], False),
    ("p95", [10, None, 12], None),     # a repeat that measured nothing: not judged on the rest
])
def test_verdict_rule(rule: str, values: list, expected: bool | None) -> None:
    rows = [Objective.judge("MTTR", 30.0, v, "s").__dict__ for v in values]
    assert objective_stats("MTTR", rows, rule)["passed"] is expected


def test_an_aborted_repeat_aborts_the_series(tmp_path: Path) -> None:
    outcomes = [write(tmp_path, 0, 5.0), write(tmp_path, 1, 5.0, verdict="aborted")]
    assert build_series("s", outcomes, "p95", 2).verdict is Verdict.ABORTED


# --- regression -------------------------------------------------------------------------------

def _history(results: Path, values: list[float]) -> None:
    for i, v in enumerate(values):
        write(results, i, v)


def _run_series(results: Path, current: list[float], spec: str = "last:10", **reg) -> dict:
    cfg = parse_config({"regression": reg} if reg else {}, "test")
    outcomes = [write(results, 100 + i, v) for i, v in enumerate(current)]
    [s] = _series(outcomes, cfg, results, len(current), "all", spec)
    return s


def test_regressed_against_a_known_distribution(tmp_path: Path) -> None:
    rnd = random.Random(3)
    _history(tmp_path, [rnd.gauss(5.0, 0.3) for _ in range(10)])           # baseline MTTR ≈ 5 s
    s = _run_series(tmp_path, [rnd.gauss(8.0, 0.3) for _ in range(5)])      # now ≈ 8 s: +60 %, still < 30 s target
    assert s["verdict"] == "regressed" and s["exit_code"] == 7
    reg = s["regression"]
    mttr = next(c for c in reg["objectives"] if c["name"] == "MTTR")
    assert mttr["status"] == "regressed" and mttr["change"] > 0.25 and mttr["p_value"] < 0.05
    assert "last 10 run(s) of db_outage" in reg["baseline"] and len(reg["baseline_runs"]) == 10
    assert all(r["run_id"] not in s["runs"] for r in reg["baseline_runs"]), "never compared with itself"
    avail = next(c for c in reg["objectives"] if c["name"].startswith("availability"))
    assert avail["status"] == "ok"
    # the series is on disk, listed by history, with its report (every repeat visible)
    hist = load_history(tmp_path)
    assert [x["series_id"] for x in hist.series] == [s["series_id"]]
    html = Path(s["report"]).read_text()
    assert "REGRESSED" in html and reg["baseline"].split(" in ")[0] in html
    assert html.count("<title>repeat ") == 2 * 5 and html.count("<title>baseline ") >= 10


def test_same_distribution_passes(tmp_path: Path) -> None:
    rnd = random.Random(4)
    _history(tmp_path, [rnd.gauss(5.0, 0.3) for _ in range(10)])
    s = _run_series(tmp_path, [rnd.gauss(5.0, 0.3) for _ in range(5)])
    assert s["verdict"] == "passed" and s["exit_code"] == 0
    assert s["regression"]["status"] == "ok"


def test_worse_but_within_tolerance_is_not_regressed(tmp_path: Path) -> None:
    _history(tmp_path, [5.0 + 0.01 * i for i in range(10)])
    s = _run_series(tmp_path, [5.5 + 0.01 * i for i in range(5)], tolerance=0.25)  # +10 %, significant
    mttr = next(c for c in s["regression"]["objectives"] if c["name"] == "MTTR")
    assert mttr["status"] == "ok" and mttr["p_value"] < 0.05 and 0 < mttr["change"] < 0.25


@pytest.mark.parametrize(("history", "current", "why"), [
    ([5.0, 5.1], [9.0, 9.1, 9.2], "2 baseline run(s) measured it, 3 needed"),
    ([5.0, 5.1, 5.2], [9.0, 9.1, 9.2], "cannot reach p < 0.05"),    # smallest p with 3 vs 3: 1/20
    ([5.0 + i / 100 for i in range(10)], [9.0], "cannot reach p < 0.05"),  # one run needs 19
])
def test_not_enough_history_is_said_and_changes_nothing(tmp_path: Path, history, current, why) -> None:
    _history(tmp_path, history)
    s = _run_series(tmp_path, current)
    mttr = next(c for c in s["regression"]["objectives"] if c["name"] == "MTTR")
    assert mttr["status"] == "not enough history" and why in mttr["message"]
    assert s["regression"]["status"] == "not enough history"
    assert s["verdict"] == "passed" and s["exit_code"] == 0, "the verdict of the run itself stands"
    doc = summary("run", 0, [], [{k: v for k, v in s.items() if k != "exit_code"}])
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    case = ET.fromstring(junit_xml(doc).split("\n", 1)[1]).find(".//testcase[@name='regression: MTTR']")
    assert case.find("skipped") is not None and why in case.find("skipped").get("message")


def test_baseline_excludes_other_cases_and_aborted_runs(tmp_path: Path) -> None:
    for i in range(6):
        write(tmp_path, i, 5.0, case="test_db_outage[network]")
        write(tmp_path, 10 + i, 5.0, verdict="aborted")
    s = _run_series(tmp_path, [9.0, 9.1, 9.2])
    assert s["regression"]["baseline_runs"] == []
    assert s["regression"]["status"] == "not enough history"


def test_baseline_by_run_id_and_by_series_file(tmp_path: Path) -> None:
    rnd = random.Random(5)
    _history(tmp_path, [rnd.gauss(5.0, 0.2) for _ in range(6)])
    first = _run_series(tmp_path, [rnd.gauss(5.0, 0.2) for _ in range(6)], spec="last:6")
    series_file = tmp_path / first["series_id"] / "series.json"
    cfg = parse_config({}, "test")
    outcomes = [write(tmp_path, 200 + i, rnd.gauss(9.0, 0.2)) for i in range(4)]
    [by_file] = _series(outcomes, cfg, tmp_path, 4, "all", str(series_file))
    assert by_file["verdict"] == "regressed" and "series " + first["series_id"] in by_file["regression"]["baseline"]
    [by_id] = _series(outcomes, cfg, tmp_path, 4, "all", first["series_id"])
    assert by_id["verdict"] == "regressed"
    one = load_history(tmp_path).runs[0].run_id
    [by_run] = _series(outcomes, cfg, tmp_path, 4, "all", one)
    assert by_run["regression"]["status"] == "not enough history"  # one run is never enough


def test_json_and_junit_carry_series_and_regression(tmp_path: Path) -> None:
    rnd = random.Random(6)
    _history(tmp_path, [rnd.gauss(5.0, 0.3) for _ in range(10)])
    s = _run_series(tmp_path, [rnd.gauss(8.0, 0.3) for _ in range(5)])
    doc = summary("run", 7, [], [{k: v for k, v in s.items() if k != "exit_code"}])
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    assert doc["status"] == "regressed"
    suite = ET.fromstring(junit_xml(doc).split("\n", 1)[1]).find(f"testsuite[@name='{s['series_id']}']")
    failure = suite.find("testcase[@name='regression: MTTR']/failure")
    assert failure is not None and failure.get("type") == "regressed"
    mttr = suite.find("testcase[@name='MTTR']")
    assert "median" in mttr.find("system-out").text and "p95" in mttr.find("system-out").text


def test_min_p_value_and_a_zero_baseline() -> None:
    assert min_p_value(3, 3) == pytest.approx(0.05) and min_p_value(1, 19) == pytest.approx(0.05)
    c = compare_objective("x", "s", "lower", [1.0, 1.1, 1.2, 1.3], [0.0] * 6, 0.25, 0.05, 3)
    assert c["status"] == "regressed" and c["change"] is None


def test_history_reads_aborted_and_regressed_runs_and_the_case(tmp_path: Path) -> None:
    write(tmp_path, 0, 5.0, verdict="aborted")
    write(tmp_path, 1, 5.0, verdict="regressed")
    hist = load_history(tmp_path, use_index=False)
    assert not hist.skipped
    assert [(r.verdict, r.outcome, r.case) for r in hist.runs] == [("aborted", "aborted", CASE),
                                                                   ("regressed", "failed", CASE)]
    assert "regressed against its baseline" in hist.runs[1].reason


@pytest.mark.parametrize(("spec", "why"), [("last:0", "N ≥ 1"), ("last:x", "N ≥ 1"),
                                           ("20990101T000000Z-db_outage-nope", "no such run or series")])
def test_a_bad_baseline_is_refused_before_anything_runs(tmp_path: Path, spec: str, why: str) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    res = CliRunner().invoke(app, ["run", "-m", "db_outage", "--results", str(tmp_path), "--baseline", spec])
    assert getattr(res.exception, "exit_code", None) == 2 and why in str(res.exception)  # main() exits with it
    assert list(tmp_path.iterdir()) == []


def test_baseline_save_freezes_the_last_runs_and_run_compares_with_the_file(tmp_path: Path) -> None:
    """`chaosdrill baseline save` (the real CLI) writes the last N completed runs of a case into a file;
    `--baseline FILE` then compares with exactly those runs, however many runs arrive later."""
    import subprocess
    import sys

    rnd = random.Random(7)
    results = tmp_path / "results"
    results.mkdir()
    _history(results, [rnd.gauss(5.0, 0.2) for _ in range(8)])
    write(results, 50, 5.0, case="test_db_outage[network]")
    cli = [sys.executable, "-m", "harness.cli_main", "baseline", "save", "--results", str(results),
           "--scenario", "db_outage"]
    several = subprocess.run([*cli, "--out", str(tmp_path / "b.json")], capture_output=True, text=True)
    assert several.returncode == 2 and "--case" in several.stderr and "Traceback" not in several.stderr
    assert len(several.stderr.strip().splitlines()) == 1
    proc = subprocess.run([*cli, "--case", CASE, "--last", "6", "--out", str(tmp_path / "b.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "b.json") and "6 run(s)" in proc.stderr
    doc = json.loads((tmp_path / "b.json").read_text())
    newest = [r.run_id for r in load_history(results).runs if r.case == CASE][-6:]
    assert [r["run_id"] for r in doc["runs"]] == newest
    assert len(next(o["samples"] for o in doc["objectives"] if o["name"] == "MTTR")) == 6
    for i in range(10):  # later runs do not move a saved baseline
        write(results, 300 + i, 50.0)
    cfg = parse_config({}, "test")
    outcomes = [write(results, 400 + i, rnd.gauss(9.0, 0.2)) for i in range(4)]
    [s] = _series(outcomes, cfg, results, 4, "all", str(tmp_path / "b.json"))
    assert s["verdict"] == "regressed" and [r["run_id"] for r in s["regression"]["baseline_runs"]] == newest
    for bad, why in ((["--scenario", "nope"], "no run of scenario 'nope'"), (["--last", "0"], "--last")):
        proc = subprocess.run([*cli[:-2], *bad, "--case", CASE, "--out", str(tmp_path / "c.json"),
                               *([] if "--scenario" in bad else ["--scenario", "db_outage"])],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and why in proc.stderr and not (tmp_path / "c.json").exists(), proc.stderr
