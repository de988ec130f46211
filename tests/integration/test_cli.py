"""The chaosdrill CLI as a user runs it: a real db_outage run end to end, and bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.env.local import load_state
from tests.helpers.scenarios import QUICK

CLI = [sys.executable, "-m", "harness.cli_main"]


def chaosdrill(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=os.environ | {"COLUMNS": "200"})


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    (work / "chaosdrill.toml").write_text(QUICK)
    proc = chaosdrill("run", "-m", "db_outage", cwd=work)
    return work, proc


def test_run_prints_the_report_path_and_writes_results(quick_run) -> None:
    work, proc = quick_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report_lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("report: ")]
    assert len(report_lines) == 1
    report = Path(report_lines[0].removeprefix("report: "))
    assert report.is_file() and report.parent.parent == work / "chaosdrill-results"
    result = json.loads((report.parent / "result.json").read_text())
    assert result["schema_version"] == 1
    assert result["verdict"] == "passed"
    assert (report.parent / "timeline.csv").is_file()
    assert (report.parent / "load" / "load-stats.json").is_file()
    assert result["load"]["requests"] > 0
    html = report.read_text()
    assert "<svg" in html and "db_outage" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "a self-contained report fetches nothing"
    assert "<link" not in html and "@import" not in html


def test_run_output_is_chaosdrills_own_in_human_units(quick_run) -> None:
    """Without -v no pytest line (dots, 'N passed', ===== sections) reaches the user; the summary shows the
    run id whole and values in the report's units, never '0.002581 s', '1 ratio' or '1 bool'."""
    work, proc = quick_run
    text = proc.stdout + proc.stderr
    assert not re.search(r"\d+ (passed|failed|skipped)|={5,}|^\.+ *(\[\s*\d+%\])?$", text, re.M), text
    assert "Traceback" not in text
    (run_dir,) = (work / "chaosdrill-results").iterdir()
    assert run_dir.name in proc.stderr
    assert not re.search(r"\d\.\d{4,} s\b| ratio\b| bool\b", proc.stderr), proc.stderr
    assert re.search(r"\d+(\.\d+)? (ms|s)\b", proc.stderr) and " %" in proc.stderr


def test_run_measures_mttr_of_the_known_outage(quick_run) -> None:
    """The DB is down from kill (t_inject) to restart (t_clear); the app's breaker opens and its recovery
    (0.1 s × attempt between tries here) closes it once the pool validates. So MTTR must equal that
    outage within two probe intervals plus one recovery wait and a reconnect."""
    work, proc = quick_run
    (run_dir,) = (work / "chaosdrill-results").iterdir()
    fault = json.loads((run_dir / "result.json").read_text())["measurements"]["fault"]
    outage = (fault["t_clear_ns"] - fault["t_inject_ns"]) / 1e9
    assert 1.5 <= outage < 3.0
    assert -2 * 0.1 <= fault["mttr_s"] - outage <= 2 * 0.1 + 0.3, (fault["mttr_s"], outage)
    assert fault["time_to_detect_s"] <= 0.2
    assert fault["breaker"]["breaker"] == "postgres" and fault["breaker"]["time_to_open_s"] is not None
    assert fault["recovery"]["succeeded"] is True


def test_report_regenerates_from_the_run_directory(quick_run, tmp_path) -> None:
    work, _ = quick_run
    (run_dir,) = (work / "chaosdrill-results").iterdir()
    out = tmp_path / "again.html"
    proc = chaosdrill("report", str(run_dir), "--out", str(out), cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert out.read_text() == (run_dir / "report.html").read_text()


def test_a_missed_target_exits_3(tmp_path) -> None:
    (tmp_path / "strict.toml").write_text(QUICK + '[targets]\nmttr = "0.5s"\n')
    proc = chaosdrill("run", "-c", "strict.toml", cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "chaosdrill-results").iterdir()
    assert json.loads((run_dir / "result.json").read_text())["verdict"] == "failed"


@pytest.mark.parametrize(("args", "message"), [
    (["run", "-m", "db_outgae"], "unknown marker 'db_outgae'; allowed: db_outage"),
    (["run", "-c", "missing.toml"], "missing.toml: config file not found"),
    (["report", "."], "not a run directory (no result.json)"),
    (["env", "down", "no-such-env"], "no environment 'no-such-env'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message) -> None:
    proc = chaosdrill(*args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "chaosdrill-results").exists()


@pytest.fixture
def busy_port():
    """A loopback port something else is listening on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _leftovers(before: set[str], tmp_path: Path) -> list[str]:
    found = [r["id"] for r in load_state() if r["id"] not in before]
    if (tmp_path / "chaosdrill-results").exists():
        found.append("chaosdrill-results")
    return found


@pytest.mark.parametrize("command", ["run", "drill", "env up"])
def test_a_port_in_use_is_one_line_exit_2_and_starts_nothing(tmp_path, busy_port, command) -> None:
    (tmp_path / "chaosdrill.toml").write_text(f"[environment.local]\nredis_port = {busy_port}\n")
    before = {r["id"] for r in load_state()}
    proc = chaosdrill(*command.split(), cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"environment.local.redis_port: 127.0.0.1:{busy_port} is in use" in lines[0]
    assert _leftovers(before, tmp_path) == []


@pytest.mark.parametrize(("setting", "env", "code", "message"), [
    ('pg_bindir = "/nonexistent/bin"', {}, 2,
     "environment.local.pg_bindir: /nonexistent/bin has no initdb, pg_ctl, postgres"),
    ("", {"CHAOSDRILL_PG_BINDIR": "/nonexistent/bin"}, 4,
     "PostgreSQL binaries not found in /nonexistent/bin: install postgresql-15"),
])
def test_missing_postgres_binaries_are_one_line(tmp_path, setting, env, code, message) -> None:
    (tmp_path / "chaosdrill.toml").write_text(f"[environment.local]\n{setting}\n")
    before = {r["id"] for r in load_state()}
    proc = subprocess.run([*CLI, "run"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=os.environ | {"COLUMNS": "200"} | env)
    assert proc.returncode == code, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert _leftovers(before, tmp_path) == []


def test_pytest_directly_stops_with_one_line_on_a_port_in_use(tmp_path, busy_port) -> None:
    """`pytest scenarios/ -m db_outage` (no CLI): the plugin stops the session, no traceback per scenario."""
    (tmp_path / "chaosdrill.toml").write_text(f"[environment.local]\npostgres_port = {busy_port}\n")
    scenarios = Path(__file__).resolve().parents[2] / "scenarios"
    before = {r["id"] for r in load_state()}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(scenarios), "-m", "db_outage", "-q",
                           "-p", "no:cacheprovider"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"environment.local.postgres_port: 127.0.0.1:{busy_port} is in use" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert _leftovers(before, tmp_path) == []


def test_bad_config_file_starts_nothing(tmp_path) -> None:
    (tmp_path / "chaosdrill.toml").write_text("[load]\nusers = 0\n")
    before = {r["id"] for r in load_state()}
    proc = chaosdrill("run", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "load.users: Input should be greater than or equal to 1 (got 0)" in proc.stderr
    assert {r["id"] for r in load_state()} == before


def test_env_up_outlives_the_command_and_env_down_removes_it(tmp_path) -> None:
    import httpx

    proc = chaosdrill("env", "up", "--output", "json", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    try:
        assert httpx.get(f"{state['app']['url']}/health", timeout=5).status_code == 200
        assert chaosdrill("cleanup", cwd=tmp_path).returncode == 0
        assert httpx.get(f"{state['app']['url']}/health", timeout=5).status_code == 200, "cleanup kept it"
    finally:
        down = chaosdrill("env", "down", state["id"], cwd=tmp_path, timeout=60)
    assert down.returncode == 0 and state["id"] in down.stdout
    assert not Path(state["base"]).exists()


def test_doctor_reports_components_as_json(tmp_path) -> None:
    proc = chaosdrill("doctor", "--output", "json", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stdout
    names = {c["name"]: c for c in json.loads(proc.stdout)}
    assert names["postgresql"]["ok"] and names["redis-server"]["ok"]
