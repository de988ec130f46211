"""Output for CI systems: one JSON summary (`--json`, stdout) and JUnit XML (`--junit FILE`).

    outcomes (+ series: repeats, regression) ──summary()──► dict ──► --json (schemas/summary.schema.json)
                                                                └──► junit_xml() ──► --junit FILE

JUnit: one <testsuite> per run (name = run id) with one <testcase> per objective; a missed
objective is a <failure> whose message names target and achieved, one not measured is <skipped>.
An aborted run adds a "stop condition" testcase that fails with the guard, its threshold and the
observed value. A series (`--repeat`, `--baseline`) is one more testsuite: one testcase per
objective under the verdict rule, and one "regression: <objective>" testcase per comparison
(regressed = <failure>, not enough history = <skipped>, never a silent pass).

The summary's shape is stable (summary_schema_version, SUMMARY_SCHEMA: a JSON Schema); tools read it
instead of the terminal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from harness import redact
from harness.errors import EXIT_CODES

SUMMARY_SCHEMA_VERSION = 1
STATUS_OF_CODE = {0: "passed", 2: "bad input", 3: "target missed", 4: "tool error", 5: "revert failed",
                  6: "aborted", 7: "regressed", 130: "interrupted", 143: "interrupted"}


def _fmt(value: Any, unit: str) -> str:
    from reports.run_report import format_value

    return format_value(value, unit)


def _bound(obj: dict[str, Any]) -> str:
    return {"lower": "≤", "higher": "≥"}.get(obj.get("better", "lower"), "≈")


def objective_dict(obj: Any) -> dict[str, Any]:
    d = obj if isinstance(obj, dict) else obj.__dict__
    return {k: d.get(k) for k in ("name", "target", "achieved", "unit", "better", "passed", "note")}


def run_dict(outcome: Any) -> dict[str, Any]:
    """One run (a fault experiment's RunOutcome or a drill's outcome) as the summary shows it."""
    status = getattr(outcome, "status", None)
    return {"run_id": outcome.run_id, "scenario": getattr(outcome, "scenario", None) or _scenario_of(outcome.run_id),
            "case": getattr(outcome, "case", None), "verdict": outcome.verdict.value,
            "status": getattr(status, "value", status) or "completed",
            "run_dir": str(outcome.run_dir), "report": str(outcome.report) if outcome.report else None,
            "abort": getattr(outcome, "abort", None), "error": getattr(outcome, "error", None),
            "objectives": [objective_dict(o) for o in outcome.objectives],
            **({"checks": [{"name": c["name"], "passed": c["passed"], "detail": c.get("detail", ""),
                            "objects": list(c.get("objects") or [])[:20]} for c in outcome.checks]}
               if isinstance(getattr(outcome, "checks", None), list) else {})}


def _scenario_of(run_id: str) -> str:
    parts = run_id.split("-")
    return "-".join(parts[1:-1]) if len(parts) > 2 else run_id


def summary(command: str, exit_code: int, outcomes: list[Any] = (), series: list[dict[str, Any]] = (),
            error: str | None = None) -> dict[str, Any]:
    """The `--json` document: what ran, each objective, each series' statistics and regression."""
    return {"summary_schema_version": SUMMARY_SCHEMA_VERSION, "command": command, "exit_code": exit_code,
            "status": STATUS_OF_CODE.get(exit_code, "tool error"), "meaning": EXIT_CODES.get(exit_code, ""),
            "error": error, "runs": [run_dict(o) for o in outcomes], "series": list(series)}


def dumps_summary(doc: dict[str, Any]) -> str:
    return redact.redact(json.dumps(doc, indent=2, default=str))


def _failure_text(obj: dict[str, Any]) -> str:
    achieved = "not measured" if obj.get("achieved") is None else _fmt(obj["achieved"], obj["unit"])
    text = f"{obj['name']}: target {_bound(obj)} {_fmt(obj['target'], obj['unit'])}, achieved {achieved}"
    return text + (f" ({obj['note']})" if obj.get("note") else "")


def _case(suite: ET.Element, classname: str, name: str, passed: bool | None, message: str,
          kind: str = "target missed", time_s: float = 0.0) -> ET.Element:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{time_s:.3f}")
    if passed is False:
        ET.SubElement(case, "failure", message=message, type=kind).text = message
    elif passed is None:
        ET.SubElement(case, "skipped", message=message)
    else:
        ET.SubElement(case, "system-out").text = message
    return case


def _finish_suite(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))


def _properties(suite: ET.Element, props: dict[str, Any]) -> None:
    el = ET.SubElement(suite, "properties")
    for k, v in props.items():
        if v is not None:
            ET.SubElement(el, "property", name=k, value=str(v))


def junit_xml(doc: dict[str, Any]) -> str:
    """JUnit XML of a summary() document (the same facts as --json, as CI test results)."""
    root = ET.Element("testsuites", name=f"chaosdrill {doc['command']}")
    for run in doc["runs"]:
        scenario = run["scenario"]
        suite = ET.SubElement(root, "testsuite", name=run["run_id"])
        _properties(suite, {"scenario": scenario, "case": run["case"], "verdict": run["verdict"],
                            "status": run["status"], "report": run["report"]})
        classname = f"chaosdrill.{scenario}" + (f".{run['case']}" if run["case"] else "")
        if run.get("abort"):
            a = run["abort"]
            _case(suite, classname, "stop condition", False, abort_text(a), kind="aborted")
        elif run["verdict"] == "aborted":
            _case(suite, classname, "stop condition", False, "run aborted", kind="aborted")
        for obj in run["objectives"]:
            passed = obj["passed"]
            text = _failure_text(obj)
            _case(suite, classname, obj["name"], passed, ("not measured: " + text) if passed is None else text)
        for check in run.get("checks") or []:  # a restore test: each named check is a test result too
            text = "; ".join(x for x in [check["detail"], *check["objects"][:10]] if x) or check["name"]
            _case(suite, classname, f"check: {check['name']}", check["passed"], text, kind="check failed")
        if run.get("error") and not run.get("abort"):  # an error (a timeout, a missing tool), not a stop
            case = ET.SubElement(suite, "testcase", classname=classname, name="run error", time="0.000")
            ET.SubElement(case, "error", message=run["error"], type="run error").text = run["error"]
        if not run["objectives"]:
            _case(suite, classname, "objectives", None, "not measured: the run judged no objective")
        _finish_suite(suite)
    for s in doc["series"]:
        suite = ET.SubElement(root, "testsuite", name=s["series_id"])
        _properties(suite, {"scenario": s["scenario"], "case": s.get("case"), "repeats": s["repeats"],
                            "rule": s["rule"], "verdict": s["verdict"], "report": s.get("report"),
                            "baseline": (s.get("regression") or {}).get("baseline")})
        classname = f"chaosdrill.{s['scenario']}.series"
        for obj in s["objectives"]:
            text = (f"{obj['name']} over {obj['n']} repeat(s) ({s['rule']}): target {_bound(obj)} "
                    f"{_fmt(obj['target'], obj['unit'])}; median {_fmt(obj['median'], obj['unit'])}, "
                    f"p95 {_fmt(obj['p95'], obj['unit'])}, worst {_fmt(obj['worst'], obj['unit'])}")
            _case(suite, classname, obj["name"], obj["passed"], ("not measured: " + text) if obj["passed"] is None
                  else text)
        reg = s.get("regression")
        for c in (reg or {}).get("objectives", []):
            passed = {"regressed": False, "ok": True}.get(c["status"])
            _case(suite, classname, f"regression: {c['name']}", passed, c["message"], kind="regressed")
        _finish_suite(suite)
    if doc.get("error"):
        suite = ET.SubElement(root, "testsuite", name=f"chaosdrill {doc['command']}")
        case = ET.SubElement(suite, "testcase", classname="chaosdrill", name=f"chaosdrill {doc['command']}",
                             time="0.000")
        ET.SubElement(case, "error", message=doc["error"], type=doc["status"]).text = doc["error"]
        _finish_suite(suite)
    ET.indent(root)
    return redact.redact('<?xml version="1.0" encoding="UTF-8"?>\n' + xml_safe(ET.tostring(root, encoding="unicode"))
                         + "\n")


# characters XML 1.0 forbids anywhere (ElementTree writes them as they are, making the file unparsable)
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Spell each XML-illegal character (a control byte in a Redis key or file name a check names) as
    `\\xNN`, so the report stays parsable and still says which object it was."""
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                            else f"\\u{ord(m.group()):04x}", text)


def abort_text(a: dict[str, Any]) -> str:
    """One line: which guard tripped, its threshold, what was observed, and how fast the fault went."""
    if a.get("guard") is None:
        return f"aborted: {a.get('reason', 'interrupted')}"
    text = (f"stop condition {a['guard']} ({a['kind']}) tripped: observed {a['observed_text']} "
            f"{a['comparison']} threshold {a['threshold_text']}")
    if a.get("time_to_revert_s") is not None:
        text += f"; fault reverted {_fmt(a['time_to_revert_s'], 's')} after the threshold was crossed"
    return text


def write_junit(path: Path, doc: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(doc), encoding="utf-8")
    return path


_NUM = {"type": ["number", "null"]}
_OBJECTIVE = {"type": "object", "required": ["name", "target", "achieved", "unit", "better", "passed"],
              "properties": {"name": {"type": "string"}, "target": {"type": "number"}, "achieved": _NUM,
                             "unit": {"type": "string"}, "better": {"enum": ["lower", "higher", "near"]},
                             "passed": {"type": ["boolean", "null"]}, "note": {"type": ["string", "null"]}}}
_ABORT = {"type": ["object", "null"], "required": ["reason"],
          "properties": {"reason": {"type": "string"}, "guard": {"type": ["string", "null"]},
                         "kind": {"type": ["string", "null"]}, "threshold": _NUM, "observed": _NUM,
                         "t_crossed_ns": {"type": ["integer", "null"]}, "time_to_revert_s": _NUM,
                         "time_to_cleared_s": _NUM}}
_CHECK = {"type": "object", "required": ["name", "passed", "detail", "objects"],
          "properties": {"name": {"type": "string"}, "passed": {"type": "boolean"}, "detail": {"type": "string"},
                         "objects": {"type": "array", "items": {"type": "string"}}}}
_SERIES_OBJECTIVE = {"type": "object",
                     "required": ["name", "unit", "better", "target", "n", "samples", "median", "p95", "worst",
                                  "ci95", "passed"],
                     "properties": {"name": {"type": "string"}, "unit": {"type": "string"},
                                    "better": {"enum": ["lower", "higher", "near"]}, "target": {"type": "number"},
                                    "n": {"type": "integer", "minimum": 0},
                                    "samples": {"type": "array", "items": _NUM},
                                    "median": _NUM, "p95": _NUM, "worst": _NUM,
                                    "ci95": {"type": ["array", "null"], "items": {"type": "number"},
                                             "minItems": 2, "maxItems": 2},
                                    "passed": {"type": ["boolean", "null"]}}}
_COMPARISON = {"type": "object", "required": ["name", "status", "message"],
               "properties": {"name": {"type": "string"},
                              "status": {"enum": ["ok", "regressed", "not enough history"]},
                              "message": {"type": "string"}, "baseline_n": {"type": "integer"},
                              "current_n": {"type": "integer"}, "baseline_median": _NUM, "current_median": _NUM,
                              "change": _NUM, "tolerance": _NUM, "p_value": _NUM}}
SUMMARY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "chaosdrill run/drill/restore-test --json summary",
    "type": "object",
    "required": ["summary_schema_version", "command", "exit_code", "status", "runs", "series"],
    "properties": {
        "summary_schema_version": {"const": SUMMARY_SCHEMA_VERSION},
        "command": {"enum": ["run", "drill", "restore-test"]},
        "exit_code": {"enum": sorted(EXIT_CODES)},
        "status": {"enum": sorted(set(STATUS_OF_CODE.values()))},
        "meaning": {"type": "string"},
        "error": {"type": ["string", "null"]},
        "runs": {"type": "array", "items": {
            "type": "object",
            "required": ["run_id", "scenario", "verdict", "status", "run_dir", "report", "objectives"],
            "properties": {"run_id": {"type": "string"}, "scenario": {"type": "string"},
                           "case": {"type": ["string", "null"]},
                           "verdict": {"enum": ["passed", "failed", "inconclusive", "aborted", "regressed"]},
                           "status": {"type": "string"}, "run_dir": {"type": "string"},
                           "report": {"type": ["string", "null"]}, "abort": _ABORT,
                           "error": {"type": ["string", "null"]},
                           "objectives": {"type": "array", "items": _OBJECTIVE},
                           "checks": {"type": "array", "items": _CHECK}}}},
        "series": {"type": "array", "items": {
            "type": "object",
            "required": ["series_id", "scenario", "repeats", "rule", "verdict", "objectives", "runs"],
            "properties": {"series_id": {"type": "string"}, "scenario": {"type": "string"},
                           "case": {"type": ["string", "null"]}, "repeats": {"type": "integer", "minimum": 1},
                           "rule": {"enum": ["all", "p95"]},
                           "verdict": {"enum": ["passed", "failed", "inconclusive", "aborted", "regressed"]},
                           "report": {"type": ["string", "null"]}, "runs": {"type": "array",
                                                                            "items": {"type": "string"}},
                           "objectives": {"type": "array", "items": _SERIES_OBJECTIVE},
                           "regression": {"type": ["object", "null"], "properties": {
                               "baseline": {"type": "string"}, "baseline_runs": {"type": "array"},
                               "objectives": {"type": "array", "items": _COMPARISON}}}}}},
    },
}
