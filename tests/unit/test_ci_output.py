"""--json and --junit documents: the JSON matches its schema, the JUnit XML parses with junitparser
and names target and achieved; aborted, not measured and regressed are visible, never a pass."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from junitparser import Failure, JUnitXml, Skipped

from harness.ci_output import SUMMARY_SCHEMA, dumps_summary, junit_xml, summary, write_junit
from harness.errors import EXIT_CODES, most_severe
from harness.experiment import RunOutcome
from harness.measure import Objective, Verdict

OBJECTIVES = [Objective("time to detect", 60.0, 0.05, "s", "lower", True),
              Objective("MTTR", 30.0, 42.0, "s", "lower", False, "never recovered within 60 s"),
              Objective("availability after recovery", 0.99, None, "ratio", "higher", None)]
ABORT = {"reason": "stop condition avail tripped", "guard": "avail", "kind": "availability", "threshold": 0.9,
         "observed": 0.85, "comparison": "<", "t_crossed_ns": 123, "unit": "ratio", "detail": "probe app_health",
         "threshold_text": "90 %", "observed_text": "85 %", "time_to_revert_s": 0.05, "time_to_cleared_s": 0.4}


def outcome(verdict: Verdict, abort=None, objectives=OBJECTIVES) -> RunOutcome:
    return RunOutcome("20261203T100000Z-db_outage-abc123", Path("/r/x"), Path("/r/x/report.html"), verdict,
                      list(objectives), "db_outage", "test_db_outage[kill]", abort)


SERIES = {"series_id": "20261203T100000Z-db_outage-series-abc", "scenario": "db_outage", "case": "test_db_outage[kill]",
          "repeats": 3, "rule": "all", "verdict": "regressed", "report": "/r/s/report.html", "runs": ["a", "b", "c"],
          "objectives": [{"name": "MTTR", "unit": "s", "better": "lower", "target": 30.0, "n": 3,
                          "samples": [5.0, 6.0, 7.0], "median": 6.0, "p95": 7.0, "worst": 7.0, "ci95": [5.0, 7.0],
                          "passed": True}],
          "regression": {"baseline": "last:10", "baseline_runs": ["r1"],
                         "objectives": [{"name": "MTTR", "status": "regressed", "message": "MTTR median 6 s vs 4 s",
                                         "baseline_n": 10, "current_n": 3, "baseline_median": 4.0,
                                         "current_median": 6.0, "change": 0.5, "tolerance": 0.25, "p_value": 0.01},
                                        {"name": "time to detect", "status": "not enough history",
                                         "message": "not enough history"}]}}


def doc_of(*outcomes, series=(), code=None):
    code = most_severe([o.verdict.exit_code for o in outcomes]) if code is None else code
    return json.loads(dumps_summary(summary("run", code, list(outcomes), list(series))))


def test_summary_matches_its_schema_for_every_kind_of_outcome() -> None:
    doc = doc_of(outcome(Verdict.PASSED), outcome(Verdict.ABORTED, ABORT), outcome(Verdict.FAILED), series=[SERIES])
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    assert doc["exit_code"] == 6 and doc["status"] == "aborted"
    assert doc["runs"][1]["abort"]["guard"] == "avail"
    error = json.loads(dumps_summary(summary("drill", 4, error="pgBackRest missing")))
    jsonschema.validate(error, SUMMARY_SCHEMA)


def test_exit_codes_are_one_stable_table() -> None:
    assert {c: EXIT_CODES[c].split(":")[0] for c in (0, 2, 3, 4, 5, 6, 7)} == {
        0: "passed", 2: "bad input", 3: "target missed", 4: "tool error", 5: "revert failed", 6: "aborted",
        7: "regressed"}
    assert most_severe([0, 7, 3]) == 3 and most_severe([3, 6]) == 6 and most_severe([6, 5]) == 5
    assert most_severe([]) == 0
    assert [v.exit_code for v in Verdict] == [0, 3, 3, 6, 7]


def test_junit_one_suite_per_run_one_case_per_objective(tmp_path) -> None:
    doc = doc_of(outcome(Verdict.FAILED), outcome(Verdict.ABORTED, ABORT), series=[SERIES])
    path = write_junit(tmp_path / "junit.xml", doc)
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert [s.name for s in suites] == [r["run_id"] for r in doc["runs"]] + [SERIES["series_id"]]
    failed = {c.name: c for c in suites[0]}
    assert set(failed) == {o.name for o in OBJECTIVES}
    mttr = failed["MTTR"].result[0]
    assert isinstance(mttr, Failure)
    assert mttr.message == "MTTR: target ≤ 30 s, achieved 42 s (never recovered within 60 s)"
    assert isinstance(failed["availability after recovery"].result[0], Skipped)
    assert failed["time to detect"].is_passed
    assert suites[0].failures == 1 and suites[0].skipped == 1 and suites[0].tests == 3
    stop = {c.name: c for c in suites[1]}["stop condition"].result[0]
    assert isinstance(stop, Failure) and stop.type == "aborted"
    assert "avail (availability) tripped: observed 85 % < threshold 90 %" in stop.message
    series = {c.name: c for c in suites[2]}
    assert isinstance(series["regression: MTTR"].result[0], Failure)
    assert series["regression: MTTR"].result[0].type == "regressed"
    assert isinstance(series["regression: time to detect"].result[0], Skipped)  # never a silent pass


def test_an_error_is_a_junit_error_not_an_empty_file(tmp_path) -> None:
    xml = JUnitXml.fromstring(junit_xml(summary("run", 4, error="postgres would not start")))
    suites = list(xml)
    assert suites[0].errors == 1


@pytest.mark.parametrize("verdict", list(Verdict))
def test_no_objectives_is_not_a_pass(verdict) -> None:
    xml = JUnitXml.fromstring(junit_xml(doc_of(outcome(verdict, objectives=[]))))
    case = list(list(xml)[0])[-1]
    assert not case.is_passed


def restore_outcome(checks: list[dict], error: str | None = None):
    """A restore test's outcome as the CLI hands it over: objectives, named checks, and its error if any."""
    from types import SimpleNamespace

    return SimpleNamespace(run_id="20261204T100000Z-restore_test-abc123", run_dir=Path("/r/rt"), report=None,
                           verdict=Verdict.FAILED, status="failed", objectives=OBJECTIVES[:1], checks=checks,
                           error=error)


def test_check_objects_with_control_characters_still_give_parsable_junit() -> None:
    """A Redis key or file name may hold any byte; XML 1.0 forbids most control characters."""
    key = "session:\x01\x1b[0m\x7f\ufffe"
    checks = [{"name": "Redis keys match the manifest", "passed": False, "detail": "", "objects": [key]},
              {"name": f"file {key} matches", "passed": True, "detail": f"sha256 of {key}", "objects": []}]
    doc = json.loads(dumps_summary(summary("restore-test", 3, [restore_outcome(checks)])))
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    text = junit_xml(doc)
    xml = JUnitXml.fromstring(text)  # raised "not well-formed (invalid token)" before
    cases = {c.name: c for suite in xml for c in suite}
    failed = cases["check: Redis keys match the manifest"]
    assert isinstance(failed.result[0], Failure)
    assert failed.result[0].message == "session:\\x01\\x1b[0m\x7f\\ufffe"  # an empty detail still names the object
    assert "check: file session:\\x01\\x1b[0m\x7f\\ufffe matches" in cases


def test_a_restore_test_error_is_in_the_json_and_a_junit_error() -> None:
    """A statement timeout or a missing pg_amcheck with no failing check must still fail CI visibly."""
    checks = [{"name": "server starts and reaches consistency", "passed": True, "detail": "ok", "objects": []}]
    doc = json.loads(dumps_summary(summary("restore-test", 4, [restore_outcome(checks, "pg_amcheck not found")])))
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    assert doc["runs"][0]["error"] == "pg_amcheck not found"
    suite = next(iter(JUnitXml.fromstring(junit_xml(doc))))
    assert suite.errors == 1
    case = next(c for c in suite if c.name == "run error")
    assert case.result[0].message == "pg_amcheck not found" and case.result[0]._tag == "error"
    aborted = restore_outcome(checks, "restore test aborted: SIGTERM")
    aborted.abort, aborted.verdict = {"reason": "SIGTERM", "guard": None}, Verdict.ABORTED
    stopped = json.loads(dumps_summary(summary("restore-test", 6, [aborted])))
    names = [c.name for c in next(iter(JUnitXml.fromstring(junit_xml(stopped))))]
    assert "stop condition" in names and "run error" not in names  # an abort is reported once, as the stop
    passing = json.loads(dumps_summary(summary("run", 0, [outcome(Verdict.PASSED)])))
    assert passing["runs"][0]["error"] is None
    assert all(c.name != "run error" for s in JUnitXml.fromstring(junit_xml(passing)) for c in s)
