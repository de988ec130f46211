"""`load.workers = N`: Locust's own distributed mode (a master on a loopback port + N workers) against
the reference app, with the same stats, timeline events and per-request log as one process; a worker
killed mid-run is a load error, and the run still finishes."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from harness.config import LoadConfig
from harness.env.local import LocalEnvironment
from harness.env.procs import marked, wait_until
from harness.errors import HarnessError
from harness.load import LOAD_ERROR, LoadRun, loads_dir
from harness.measure import LOAD_SNAPSHOT
from harness.timeline import Timeline


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture(scope="module")
def app_env():
    with LocalEnvironment() as env:
        yield env


def lines(path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.count(",") >= 3)
    except FileNotFoundError:
        return 0


def app_connections(pid: int, port: int) -> int:
    try:
        return sum(1 for c in psutil.Process(pid).net_connections("tcp") if c.raddr and c.raddr.port == port)
    except psutil.Error:
        return 0


def test_config_bounds_workers():
    assert LoadConfig().workers == 0
    assert LoadConfig(workers=64).workers == 64
    for bad in (-1, 65):
        with pytest.raises(ValueError):
            LoadConfig(workers=bad)
    with pytest.raises(HarnessError, match="0..64"):
        LoadRun("http://127.0.0.1:1", "/nonexistent", workers=65)


def test_master_and_two_workers_against_the_reference_app(tmp_path, app_env):
    port = int(app_env.app_url.rsplit(":", 1)[1].split("/")[0])
    run = LoadRun(app_env.app_url, tmp_path / "load", users=6, spawn_rate=50, throughput_per_user=10,
                  max_duration_s=120, workers=2)
    with run:
        master, *workers = run.pids
        assert len(workers) == 2
        assert sorted(marked(run.marker)) == sorted(run.pids), "master and workers all carry the run's marker"
        record = (loads_dir() / f"{run.id}.json").read_text()
        assert all(str(w) in record for w in workers), "every worker is recorded"
        assert "--master-bind-host" in psutil.Process(master).cmdline()
        assert wait_until(lambda: all(app_connections(w, port) for w in workers), timeout=60), \
            "both workers send requests to the app"
        listening = [c for c in psutil.Process(master).net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}
        assert wait_until(lambda: lines(run.request_log) >= 100, timeout=60)
        assert run.check() == []
    stats = run.stats
    assert stats.workers == 2 and stats.errors == [] and stats.requests > 0 and stats.failures == 0
    assert lines(run.request_log) > 0
    timeline = Timeline()
    assert run.record(timeline, bucket_s=0.5) > 0
    assert sum(e.data["requests"] for e in timeline.events if e.kind == LOAD_SNAPSHOT) == lines(run.request_log)
    assert [e for e in timeline.events if e.kind == LOAD_ERROR] == []
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in run.pids)
    assert list(loads_dir().glob("*.json")) == []


def test_a_worker_killed_mid_run_is_a_load_error_and_the_run_finishes(tmp_path, app_env):
    run = LoadRun(app_env.app_url, tmp_path / "load", users=4, spawn_rate=50, throughput_per_user=10,
                  max_duration_s=120, workers=2)
    with run:
        assert wait_until(lambda: lines(run.request_log) >= 20, timeout=60)
        victim = run.pids[2]
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: run.check() != [], timeout=30)
    assert run.stats is not None and run.stats.requests > 0, "the master still wrote its stats"
    assert any(f"pid {victim}" in e and "code -9" in e for e in run.stats.errors)
    timeline = Timeline()
    run.record(timeline)
    assert any(f"pid {victim}" in e.data["error"] for e in timeline.events if e.kind == LOAD_ERROR)
    assert not marked(run.marker), "nothing of the run is left"


def test_a_worker_that_misses_heartbeats_is_a_load_error_never_a_hang(tmp_path, app_env):
    """A worker frozen with SIGSTOP (alive, silent): the master marks it missing after its heartbeats
    stop; the run reports that as a load error and still stops within its bounded waits."""
    import time

    run = LoadRun(app_env.app_url, tmp_path / "load", users=4, spawn_rate=50, throughput_per_user=10,
                  max_duration_s=120, workers=2)
    victim = None
    try:
        with run:
            assert wait_until(lambda: lines(run.request_log) >= 20, timeout=60)
            victim = run.pids[2]
            os.kill(victim, signal.SIGSTOP)
            assert wait_until(lambda: "missing" in run.log.read_text(errors="replace"), timeout=30), \
                "the master noticed the silent worker"
            t0 = time.monotonic()
        assert time.monotonic() - t0 < 60, "stopping the run waited on the frozen worker beyond its bounds"
    finally:
        if victim is not None and psutil.pid_exists(victim):
            os.kill(victim, signal.SIGCONT)
    assert run.stats is not None and run.stats.requests > 0
    assert any("heartbeat" in e for e in run.stats.errors), run.stats.errors
    timeline = Timeline()
    run.record(timeline)
    assert any("heartbeat" in e.data["error"] for e in timeline.events if e.kind == LOAD_ERROR)
    assert not marked(run.marker), "nothing of the run is left"
