"""Process faults against real PostgreSQL and Redis servers on loopback."""

from __future__ import annotations

import subprocess

import pytest

from harness.errors import FaultRefused
from harness.faults import AllowList, Journal, KillProcess, PauseProcess, recover_leftovers
from harness.faults.journal import Entry
from harness.timeline import FAULT_ACTIVE, FAULT_APPLY_START, FAULT_CLEARED, FAULT_REVERT_START, Timeline
from tests.integration.faults.helpers import Named, redis_ping, stopped


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_kill_redis_and_restart_on_exit(redis_server):
    tl = Timeline()
    target = Named(redis_server, "redis")
    assert redis_ping(redis_server.port)
    with KillProcess(target, timeline=tl) as fault:
        assert not redis_server.running()
        assert not redis_ping(redis_server.port)
        record = Journal().read(fault.id).record
        assert record["type"] == "process_killed" and record["restart"][0].endswith("redis-server")
    assert redis_ping(redis_server.port)
    assert [e.kind for e in tl.events] == [FAULT_APPLY_START, FAULT_ACTIVE, FAULT_REVERT_START, FAULT_CLEARED]
    assert tl.events[0].source == "KillProcess(redis)"
    assert Journal().ids() == []


def test_kill_postgres_tree_and_restart(pg_server):
    target = Named(pg_server, "postgres")
    pg_server.psql("select 1")
    with KillProcess(target):
        assert not pg_server.running()
        with pytest.raises(Exception, match="psql failed"):
            pg_server.psql("select 1")
    assert pg_server.psql("select 1") == "1"


def test_pause_redis_gray_failure(redis_server):
    with PauseProcess(Named(redis_server, "redis")):
        assert stopped(redis_server.pid)
        assert not redis_ping(redis_server.port, timeout=0.3)
    assert not stopped(redis_server.pid)
    assert redis_ping(redis_server.port)


def test_pause_raw_pids():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with PauseProcess(pids=[proc.pid]) as fault:
            assert stopped(proc.pid)
            assert Journal().read(fault.id).record["pids"][0][0] == proc.pid
        assert not stopped(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_target_outside_the_environment_is_refused(redis_server):
    allow = AllowList.of(endpoints=[("127.0.0.1", redis_server.port + 1)], pids=[12345])
    with pytest.raises(FaultRefused, match=r"KillProcess\(redis\): pid \d+ is not in the environment"), \
            KillProcess(Named(redis_server, "redis"), allow=allow):
        pass
    assert redis_server.running()
    allow = AllowList.of(endpoints=[("127.0.0.1", redis_server.port)])
    with PauseProcess(Named(redis_server, "redis"), allow=allow):
        assert stopped(redis_server.pid)


def _dead_owner_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_cleanup_restarts_a_killed_service_from_its_recipe(redis_server, state):
    fault = KillProcess(Named(redis_server, "redis"))
    fault._prepare()
    record = fault.journal_record()
    Journal().write(Entry("k1", fault.label, record, owner_pid=_dead_owner_pid(), owner_start=0.0))
    redis_server.kill()
    assert not redis_ping(redis_server.port)
    lines = recover_leftovers(state)
    assert len(lines) == 1 and lines[0].startswith("undone KillProcess(redis): restarted redis")
    assert redis_ping(redis_server.port)
    assert recover_leftovers(state) == []
    subprocess.run(["redis-cli", "-p", str(redis_server.port), "shutdown", "nosave"], capture_output=True)


class _NoRecipe:
    """A named target that cannot say how to restart it (RedisServer can; a bare process cannot)."""

    def __init__(self, server, name: str) -> None:
        self.server, self.name = server, name

    def __getattr__(self, attr: str):
        if attr == "restart_recipe":
            raise AttributeError(attr)
        return getattr(self.server, attr)


def test_cleanup_without_recipe_keeps_the_entry(redis_server, state):
    fault = KillProcess(_NoRecipe(redis_server, "redis"))
    fault._prepare()
    Journal().write(Entry("k2", fault.label, fault.journal_record(), owner_pid=_dead_owner_pid()))
    redis_server.kill()
    [line] = recover_leftovers(state)
    assert line.startswith("FAILED KillProcess(redis): redis was killed and has no restart recipe")
    assert Journal().ids() == ["k2"]


def test_the_first_chaosdrill_fixture_of_any_session_undoes_leftovers(tmp_path, state) -> None:
    """Not only `pytest scenarios/`: a suite of one's own that uses chaos_config cleans up first."""
    import os
    import signal
    import sys
    import time

    proc = subprocess.Popen(["sleep", "60"])
    try:
        fault = PauseProcess(pids=[proc.pid])
        fault._prepare()
        Journal().write(Entry("k3", fault.label, fault.journal_record(), owner_pid=_dead_owner_pid()))
        os.kill(proc.pid, signal.SIGSTOP)
        for _ in range(100):  # the signal lands asynchronously
            if stopped(proc.pid):
                break
            time.sleep(0.01)
        assert stopped(proc.pid)
        suite = tmp_path / "my_chaos_suite"
        suite.mkdir()
        (suite / "test_mine.py").write_text("def test_uses_the_plugin(chaos_config):\n    assert chaos_config\n")
        run = subprocess.run([sys.executable, "-m", "pytest", str(suite), "-q", "-s", "-p", "no:cacheprovider"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env=os.environ | {"CHAOSDRILL_STATE_DIR": str(state)})
        assert run.returncode == 0, run.stdout + run.stderr
        assert "chaosdrill cleanup: undone PauseProcess" in run.stdout
        assert not stopped(proc.pid)
        assert Journal().ids() == []
    finally:
        proc.kill()
        proc.wait()
