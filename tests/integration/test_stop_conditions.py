"""Stop conditions and signals on real db_outage runs through the CLI (issue 11, item 1).

- a guard that must trip (availability floor 90 % during a 10 s database kill) aborts the run:
  exit 6, the fault reverted, recovery measured, the guard, threshold and observed value recorded,
  the time from the crossing to the revert measured; --json validates, --junit shows the abort;
- guards that must not trip (an alarm URL answering 200, a command exiting 0, a generous p99
  ceiling) leave the run alone;
- SIGTERM mid-fault: the fault reverted, an aborted run recorded, exit 143, nothing left behind.
The time budget itself (≤ 2 probe intervals) is a benchmark: bench/bench_guards.py.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import pytest
from junitparser import Failure, JUnitXml

from harness.ci_output import SUMMARY_SCHEMA
from harness.cleanup import cleanup_all
from harness.env.local import load_state
from harness.faults.journal import Journal
from tests.helpers.interrupt import signal_cli_when

CLI = [sys.executable, "-m", "harness.cli_main"]
BASE = """
[run]
probe_interval = "100ms"
[environment.local.app]
recovery_wait = "100ms"
[load]
users = 4
throughput_per_user = 5
[scenarios.db_outage]
baseline = "2s"
hold = "{hold}"
after = "1s"
"""


def chaosdrill(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=os.environ | {"COLUMNS": "200"})


def only_run(results: Path) -> tuple[Path, dict]:
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return run_dir, json.loads((run_dir / "result.json").read_text())


def nothing_left(envs_before: set[str]) -> None:
    assert [r["id"] for r in load_state() if r["id"] not in envs_before] == []
    assert Journal().entries() == []
    assert cleanup_all() == []


def test_availability_floor_trips_during_a_database_kill(tmp_path) -> None:
    (tmp_path / "chaosdrill.toml").write_text(BASE.format(hold="10s") + """
[scenarios.db_outage.guards.avail]
kind = "availability"
threshold = 0.9
window = "2s"
""")
    before = {r["id"] for r in load_state()}
    proc = chaosdrill("run", "-m", "db_outage", "--results", "res", "--json", "--junit", "junit.xml", cwd=tmp_path)
    assert proc.returncode == 6, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is the summary alone
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    assert doc["status"] == "aborted" and doc["runs"][0]["verdict"] == "aborted"
    run_dir, result = only_run(tmp_path / "res")
    assert result["status"] == "aborted" and result["verdict"] == "aborted"
    abort = result["abort"]
    assert abort["guard"] == "avail" and abort["threshold"] == 0.9 and abort["observed"] < 0.9
    fault = result["measurements"]["fault"]
    assert fault["t_inject_ns"] < abort["t_crossed_ns"]
    assert abort["time_to_revert_s"] is not None and abort["time_to_revert_s"] >= 0
    # reverted early: well before the 10 s hold ended, and recovery measured after it
    assert (fault["t_clear_ns"] - fault["t_inject_ns"]) / 1e9 < 10
    assert fault["recovered"] and fault["mttr_s"] is not None
    kinds = [line.split(",")[4] for line in (run_dir / "timeline.csv").read_text().splitlines()[1:]]
    assert kinds.index("guard.tripped") < kinds.index("fault.revert_start") < kinds.index("run.aborted")
    html = (run_dir / "report.html").read_text()
    assert "stop: avail" in html and "Aborted:" in html
    stop = {c.name: c for c in list(JUnitXml.fromfile(str(tmp_path / "junit.xml")))[0]}["stop condition"]
    assert isinstance(stop.result[0], Failure) and "threshold 90 %" in stop.result[0].message
    nothing_left(before)


@pytest.fixture
def alarm_url():
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alarm"
    server.shutdown()


def test_guards_that_must_not_trip_leave_the_run_alone(tmp_path, alarm_url) -> None:
    (tmp_path / "chaosdrill.toml").write_text(BASE.format(hold="3s") + f"""
[guards.alarm]
kind = "http"
url = "{alarm_url}"
interval = "200ms"
[guards.check]
kind = "command"
command = ["{sys.executable}", "-c", "pass"]
interval = "500ms"
[guards.latency]
kind = "p99_latency"
threshold = "30s"
[guards.load_errors]
kind = "load_error_rate"
threshold = 1.0
""")
    proc = chaosdrill("run", "-m", "db_outage", "--results", "res", "--json", cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert doc["runs"][0]["verdict"] != "aborted", proc.stderr
    assert proc.returncode in (0, 3), proc.stderr
    _, result = only_run(tmp_path / "res")
    assert result["status"] == "completed" and result["abort"] is None
    assert "4 stop condition(s) watching" in proc.stderr


def test_sigterm_mid_fault_reverts_records_aborted_and_leaves_nothing(tmp_path) -> None:
    (tmp_path / "chaosdrill.toml").write_text(BASE.format(hold="20s"))
    before = {r["id"] for r in load_state()}
    proc = signal_cli_when(["run", "-m", "db_outage", "--results", "res", "--json"], "injecting:", cwd=tmp_path,
                           delay=1, timeout=120)
    assert proc.returncode == 143, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    assert doc["runs"][0]["verdict"] == "aborted" and doc["runs"][0]["abort"]["signal"] == "SIGTERM"
    _, result = only_run(tmp_path / "res")
    assert result["status"] == "aborted" and result["abort"]["reason"] == "interrupted by SIGTERM"
    fault = result["measurements"]["fault"]
    assert fault["t_clear_ns"] is not None  # the fault was reverted on the way out
    nothing_left(before)


DRILL = """
[load]
users = 2
[drill]
warmup = 0.5
hold = 2
backup_interval = 0.5
archive_timeout = "1s"
"""


@pytest.mark.timeout(300)
def test_sigterm_mid_drill_tears_down_both_environments_and_records_aborted(tmp_path) -> None:
    """`chaosdrill drill` stopped by SIGTERM after its disaster: exit 143, the drill recorded as aborted at
    the step it was in, and neither the source nor the restored environment left running."""
    (tmp_path / "chaosdrill.toml").write_text(DRILL)
    before = {r["id"] for r in load_state()}
    proc = signal_cli_when(["drill", "--results", "res", "--json", "--junit", "junit.xml"], "restoring backup set",
                           cwd=tmp_path)
    assert proc.returncode == 143, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, SUMMARY_SCHEMA)
    (run,) = doc["runs"]
    assert run["verdict"] == "aborted" and run["abort"]["signal"] == "SIGTERM", doc
    _, result = only_run(tmp_path / "res")
    assert result["status"] == "aborted" and result["verdict"] == "aborted"
    assert result["measurements"]["status"] == "interrupted"
    assert result["abort"]["step"] in ("Restore", "Start", "Verify", "Serve"), result["abort"]
    interrupted = [s for s in result["steps"] if s["status"] == "interrupted"]
    assert [s["step"] for s in interrupted] == [result["abort"]["step"]]
    assert "interrupted by SIGTERM" in proc.stderr
    suites = JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    assert any(isinstance(r, Failure) for suite in suites for case in suite for r in case.result
               if case.name == "stop condition")
    nothing_left(before)
