"""The CI workflow templates (examples/ci/) cannot rot: both validate against their CI system's
schema offline (check-jsonschema's vendored GitHub workflow and GitLab CI schemas), and the GitHub
workflow's own drill and verdict steps run here, as a runner would run them, against the embedded
environment: a real db_outage run, its summary.json valid, its JUnit file parsed, the job's pass or
fail following chaosdrill's exit code; the monthly restore-test step against a pgBackRest repository
made here. (The weekly evidence step is not run here: it only calls `chaosdrill evidence`, which its
own tests cover.)"""

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
    for exit_code, restore, job_fails in ((code, "", code != "0"), ("0", "", False), ("3", "", True), ("6", "", True),
                                          ("7", "", True), ("0", "0", False), ("0", "3", True), ("0", "4", True)):
        script = (verdict.replace("${{ steps.drill.outputs.exit_code }}", exit_code)
                  .replace("${{ steps.restore.outputs.exit_code }}", restore))  # "": the monthly step was skipped
        job = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=30)
        assert (job.returncode != 0) == job_fails, (exit_code, restore, job.stdout)


def test_workflow_restore_test_step_runs_a_restore_test_of_a_configured_repository(tmp_path) -> None:
    """The monthly step: with a [restore_test] source it restore-tests it (a repository made with plain
    pgbackrest commands), each check a JUnit testcase; without one it skips and records exit 0."""
    from harness.config import parse_config
    from harness.drill.demo import demo_pgbackrest

    output = tmp_path / "github_output"
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}", "RESULTS": "chaosdrill-results",
                        "CHAOSDRILL_CONFIG": "chaosdrill.toml", "GITHUB_OUTPUT": str(output), "COLUMNS": "200"}
    script = step("Restore test of your backups (monthly)")["run"]
    (tmp_path / "chaosdrill-results").mkdir()
    (tmp_path / "chaosdrill.toml").write_text(QUICK)
    skipped = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=60)
    assert skipped.returncode == 0 and "restore test skipped" in skipped.stdout, skipped.stdout + skipped.stderr
    assert output.read_text().split() == ["exit_code=0"]
    (tmp_path / "chaosdrill.toml").write_text(QUICK + "\n[restore_test]\namcheck = false\n")  # settings, no source
    output.write_text("")
    no_source = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=60)
    assert "restore test skipped" in no_source.stdout and output.read_text().split() == ["exit_code=0"]

    with demo_pgbackrest(parse_config({}, "t").environment.local, rows=500) as source:
        # dotted keys, no [restore_test…] header: a grep for one would have skipped this source
        (tmp_path / "chaosdrill.toml").write_text(
            f'restore_test.pgbackrest.path = "{source.path}"\nrestore_test.pgbackrest.stanza = "{source.stanza}"\n'
            '[targets]\nrto = "300s"\nrpo = "1h"\n')
        output.write_text("")
        ran = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    assert ran.returncode == 0, ran.stderr
    code = dict(line.split("=", 1) for line in output.read_text().split())["exit_code"]
    results = tmp_path / "chaosdrill-results"
    summary = json.loads((results / "restore-test.json").read_text())
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    assert code == "0" == str(summary["exit_code"]), summary
    [suite] = list(JUnitXml.fromfile(str(results / "restore-test.xml")))
    names = {c.name for c in suite}
    assert "check: WAL replay ended where the archive ends" in names and any("pg_amcheck" in n for n in names)


@pytest.mark.parametrize(("config", "runs"), [
    (None, False), ('[run]\nresults_dir = "r"\n', False), ("[restore_test]\namcheck = false\n", False),
    ('[restore_test.pg_dump]\npath = "/backups/*.dump"\ndatabase = "shop"\n', True),
    ('restore_test.files = [{path = "/srv/files"}]\n', True),
    ("[restore_test\nbroken", True), ("restore_test = 3\n", True)])  # unreadable TOML runs: chaosdrill names the error in one line
def test_gitlab_restore_test_runs_only_with_a_source(tmp_path, config, runs) -> None:
    """The GitLab job's RESTORE_TEST=1 part decides from the parsed TOML, not a grep; a stub
    `chaosdrill` records whether it was called, and the job's last line fails on its exit code."""
    script = next(s for s in yaml.safe_load(GITLAB.read_text())["chaos-drill"]["script"] if "has_source()" in s)
    if config is not None:
        (tmp_path / "chaosdrill.toml").write_text(config)
    stub = tmp_path / "bin"
    stub.mkdir()
    (tmp_path / "r").mkdir()  # the job's first line makes $RESULTS
    (stub / "chaosdrill").write_text("#!/bin/sh\necho called >> \"$STUB_LOG\"\nexit 3\n")
    (stub / "chaosdrill").chmod(0o755)
    env = os.environ | {"PATH": f"{stub}:{BIN}:{os.environ['PATH']}", "RESULTS": "r", "RESTORE_TEST": "1",
                        "CHAOSDRILL_CONFIG": "chaosdrill.toml", "STUB_LOG": str(tmp_path / "calls"), "config": ""}
    job = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script + '\necho "rcode=$rcode"'], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=30)
    assert job.returncode == 0, job.stderr
    assert (tmp_path / "calls").exists() is runs
    assert f"rcode={3 if runs else 0}" in job.stdout
    verdict = yaml.safe_load(GITLAB.read_text())["chaos-drill"]["script"][-1]
    for code, rcode, fails in (("0", "0", False), ("3", "0", True), ("0", "3", True)):
        last = subprocess.run(["bash", "-e", "-c", f"code={code}; rcode={rcode}; {verdict}"], timeout=30)
        assert (last.returncode != 0) is fails
