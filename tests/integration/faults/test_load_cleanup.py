"""A Locust run outlives a killed harness only until `chaosdrill cleanup`; its -t follows the plan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.cleanup import cleanup_all
from harness.config import RunConfig, ScenarioConfig
from harness.env.ports import free_port
from harness.env.procs import marked
from harness.load import LoadRun, loads_dir, planned_duration_s

ROOT = Path(__file__).resolve().parents[3]

HARNESS = """
import sys, time
from harness.load import LoadRun
workers = int(sys.argv[4]) if len(sys.argv) > 4 else 0
LoadRun(sys.argv[1], sys.argv[2], users=1, max_duration_s=int(sys.argv[3]), workers=workers).start()
print("started", flush=True)
time.sleep(600)
"""


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_planned_duration_covers_the_whole_experiment():
    plan, run = ScenarioConfig(baseline=2, hold=5, after=3), RunConfig(deadline=60)
    assert planned_duration_s(plan, run) == 2 + 5 + 60 + 3 + 30
    assert planned_duration_s(ScenarioConfig(hold="15min"), run, margin_s=0) == 2 + 900 + 60 + 3


def test_locust_of_a_killed_harness_is_stopped_by_cleanup(tmp_path, state):
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens: requests fail, Locust keeps running
    env = {**os.environ, "CHAOSDRILL_STATE_DIR": str(state)}
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, host, str(tmp_path / "load"), "97"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert harness.stdout.readline().strip() == "started"
        (path,) = loads_dir().glob("*.json")
        record = json.loads(path.read_text())
        assert record["owner_pid"] == harness.pid
        locust = psutil.Process(record["pid"])
        assert "locust" in " ".join(locust.cmdline()) and "97s" in locust.cmdline()
        assert cleanup_all() == [] and alive(locust.pid), "a live harness's load run is left alone"
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
        harness.stdout.close()
    time.sleep(0.2)
    assert alive(locust.pid), "Locust runs in a session of its own: killing the harness leaves it"
    lines = cleanup_all()
    assert lines == [f"load run {record['id']}: stopped Locust pid {locust.pid} ({tmp_path / 'load'})"]
    assert not alive(locust.pid)
    assert list(loads_dir().glob("*.json")) == []
    assert cleanup_all() == []


def test_master_and_workers_of_a_killed_harness_are_stopped_by_cleanup(tmp_path, state):
    host = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "CHAOSDRILL_STATE_DIR": str(state)}
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, host, str(tmp_path / "load"), "97", "2"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert harness.stdout.readline().strip() == "started"
        (path,) = loads_dir().glob("*.json")
        record = json.loads(path.read_text())
        pids = [record["pid"], *[w["pid"] for w in record["workers"]]]
        assert len(pids) == 3 and "--master" in psutil.Process(pids[0]).cmdline()
        assert all("--worker" in psutil.Process(p).cmdline() for p in pids[1:])
        assert sorted(marked(record["marker"])) == sorted(pids)
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
        harness.stdout.close()
    assert all(alive(p) for p in pids), "master and workers run in sessions of their own"
    assert cleanup_all() == [f"load run {record['id']}: stopped Locust pid {', '.join(map(str, pids))} "
                             f"({tmp_path / 'load'})"]
    assert not any(alive(p) for p in pids)
    assert marked(record["marker"]) == []
    assert cleanup_all() == []


def test_a_stopped_run_leaves_no_record(tmp_path):
    run = LoadRun(f"http://127.0.0.1:{free_port()}", tmp_path / "load", users=1, max_duration_s=40)
    with run:
        assert [p.stem for p in loads_dir().glob("*.json")] == [run.id]
    assert list(loads_dir().glob("*.json")) == []
