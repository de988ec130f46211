"""Container faults against a real Docker engine (host networking, loopback ports only)."""

from __future__ import annotations

import pytest

from harness.errors import ContainerError, FaultRefused
from harness.faults import AllowList, Journal, recover_leftovers
from harness.faults.container import KillContainer, PauseContainer, RestartContainer, StopContainer
from harness.timeline import FAULT_ACTIVE, FAULT_CLEARED, Timeline
from tests.integration.faults.conftest import run_redis_container
from tests.integration.faults.helpers import redis_ping, wait_ping


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def status(container) -> str:
    container.reload()
    return container.status


def test_kill_by_name_and_start_again(redis_container):
    tl = Timeline()
    with KillContainer(redis_container.name, timeline=tl):
        assert status(redis_container) == "exited"
        assert redis_container.attrs["State"]["ExitCode"] == 137
        assert not redis_ping(redis_container.port_)
    assert status(redis_container) == "running"
    assert wait_ping(redis_container.port_)
    assert tl.first(FAULT_ACTIVE).source == f"KillContainer({redis_container.name})"
    assert tl.first(FAULT_CLEARED) is not None


def test_pause_is_a_gray_failure(redis_container):
    with PauseContainer(redis_container.name):
        assert status(redis_container) == "paused"
        assert not redis_ping(redis_container.port_, timeout=0.3)
    assert status(redis_container) == "running"
    assert redis_ping(redis_container.port_)


def test_stop_and_restart(redis_container):
    with StopContainer(redis_container.name, stop_timeout=1):
        assert status(redis_container) == "exited"
    assert wait_ping(redis_container.port_)
    with RestartContainer(redis_container.name):
        assert status(redis_container) == "running"
    assert wait_ping(redis_container.port_)


def test_by_label_hits_every_matching_container(docker_engine):
    a, b = run_redis_container(docker_engine, "a"), run_redis_container(docker_engine, "b")
    other = run_redis_container(docker_engine, "other")
    try:
        label = {"chaosdrill.test.name": a.name}
        with PauseContainer(label=label):
            assert status(a) == "paused" and status(b) == "running"
        with KillContainer(label="chaosdrill.test=1"):
            assert {status(a), status(b), status(other)} == {"exited"}
        assert all(wait_ping(c.port_) for c in (a, b, other))
    finally:
        for c in (a, b, other):
            c.remove(force=True)


def test_outside_the_environment_is_refused(redis_container):
    with pytest.raises(FaultRefused, match=r"container chaosdrill-test-\S+ is not in the environment"), \
            KillContainer(redis_container.name, allow=AllowList.of(containers=["db"])):
        pass
    assert status(redis_container) == "running"
    with PauseContainer(redis_container.name, allow=AllowList.of(containers=[redis_container.name])):
        assert status(redis_container) == "paused"


def test_unknown_container_and_label_are_refused(docker_engine):
    with pytest.raises(FaultRefused, match=r"no container named 'no-such-container'"), \
            KillContainer("no-such-container"):
        pass
    with pytest.raises(FaultRefused, match=r"no running container has label chaosdrill.test=nothing"), \
            KillContainer(label="chaosdrill.test=nothing"):
        pass


def test_unreachable_engine_is_one_clear_line(tmp_path):
    with pytest.raises(ContainerError) as info, KillContainer("x", docker_url=f"unix://{tmp_path}/none.sock"):
        pass
    msg = str(info.value)
    assert "\n" not in msg and "Docker engine unreachable at unix://" in msg and "ensure-docker.sh" in msg


def test_remote_engine_is_refused():
    with pytest.raises(FaultRefused, match="not a loopback address"), \
            KillContainer("x", docker_url="tcp://203.0.113.3:2375"):
        pass


def test_cleanup_unpauses_and_starts(redis_container, state):
    from harness.faults.journal import Entry
    from tests.integration.faults.test_process_faults import _dead_owner_pid

    for fault in (PauseContainer(redis_container.name), KillContainer(redis_container.name)):
        fault._prepare()
        Journal().write(Entry(fault.id, fault.label, fault.journal_record(), owner_pid=_dead_owner_pid()))
        fault._apply()
        assert status(redis_container) in ("paused", "exited")
        [line] = recover_leftovers(state)
        assert line.startswith(f"undone {fault.label}: {redis_container.name} ")
        assert status(redis_container) == "running"
        assert wait_ping(redis_container.port_)
