"""The CI workflow templates (examples/ci/) cannot rot: both validate against their CI system's
schema offline (check-jsonschema's vendored GitHub workflow and GitLab CI schemas), and the GitHub
workflow's own drill and verdict steps run here, as a runner would run them, against the embedded
environment: a real db_outage run, its summary.json valid, its JUnit file parsed, the job's pass or
fail following chaosdrill's exit code. (The weekly evidence step is not run here: it only calls
`chaosdrill evidence`, which its own tests cover.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from junitparser import JUnitXml

from harness.ci_output import SUMMARY_SCHEMA
from tests.helpers.scenarios import QUICK

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "examples/ci/github-actions-drill.yml"
GITLAB = ROOT / "examples/ci/gitlab-ci-drill.yml"
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(("path", "schema"), [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")])
def test_template_matches_its_ci_schema_offline(path, schema) -> None:
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def step(name: str) -> dict:
    steps = yaml.safe_load(GITHUB.read_text())["jobs"]["drill"]["steps"]
    return next(s for s in steps if s.get("name") == name)


def test_workflow_steps_run_a_drill_and_fail_the_job_on_its_exit_code(tmp_path) -> None:
    (tmp_path / "chaosdrill.toml").write_text(QUICK)
    output = tmp_path / "github_output"
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}", "RESULTS": "chaosdrill-results",
                        "MARKERS": "db_outage", "CHAOSDRILL_CONFIG": "chaosdrill.toml",
                        "GITHUB_OUTPUT": str(output), "COLUMNS": "200"}
    drill = subprocess.run(["bash", "-e", "-c", step("Run the drills")["run"]], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert drill.returncode == 0, drill.stderr  # the step records the code; the verdict step decides
    code = dict(line.split("=", 1) for line in output.read_text().split())["exit_code"]
    results = tmp_path / "chaosdrill-results"
    summary = json.loads((results / "summary.json").read_text())
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    assert str(summary["exit_code"]) == code and summary["runs"]
    suites = list(JUnitXml.fromfile(str(results / "junit.xml")))
    assert [s.name for s in suites] == [r["run_id"] for r in summary["runs"]]
    assert all((Path(r["run_dir"]) / "report.html").is_file() for r in summary["runs"])

    verdict = step("Fail on a missed target, an abort or a regression")["run"]
    for exit_code, job_fails in ((code, code != "0"), ("0", False), ("3", True), ("6", True), ("7", True)):
        script = verdict.replace("${{ steps.drill.outputs.exit_code }}", exit_code)
        job = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=30)
        assert (job.returncode != 0) == job_fails, (exit_code, job.stdout)
