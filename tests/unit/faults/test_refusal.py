"""Refusal rules: loopback only, the environment's allow-list, never the harness itself."""

from __future__ import annotations

import os
import socket

import pytest

from harness.errors import ConfigError, FaultRefused
from harness.faults.base import AllowList, check_pid_safe, is_loopback, require_loopback
from harness.faults.process import PauseProcess
from harness.state import write_json_atomic
from tests.unit.faults.fakes import FakeFault


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["192.0.2.5", "198.51.100.1", "203.0.113.2", "0.0.0.0", "no.such.host.invalid"])
def test_non_loopback_refused(host):
    with pytest.raises(FaultRefused, match=rf"X: '{host}' is not a loopback address") as info:
        require_loopback(host, "X")
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2


def test_endpoint_allow_list_names_the_allowed():
    allow = AllowList.of(endpoints=[("127.0.0.1", 5432), ("localhost", 6379)])
    allow.check_endpoint("127.0.0.1", 6379, "X")
    allow.check_endpoint("localhost", 5432, "X")
    with pytest.raises(FaultRefused, match=r"127.0.0.1:9999 is not in the environment \(allowed: 127.0.0.1:5432, localhost:6379\)"):
        allow.check_endpoint("127.0.0.1", 9999, "X")
    with pytest.raises(FaultRefused, match="not a loopback"):
        AllowList.of(endpoints=[("192.0.2.1", 5432)]).check_endpoint("192.0.2.1", 5432, "X")


def test_pid_allowed_by_list_or_by_the_port_it_really_listens_on():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        allow = AllowList.of(endpoints=[("127.0.0.1", port)], pids=[4242])
        allow.check_pid(4242, "X")
        allow.check_pid(os.getpid(), "X", port=port)  # this process listens there
        with pytest.raises(FaultRefused, match=rf"pid 777 does not listen on 127.0.0.1:{port}"):
            allow.check_pid(777, "X", port=port)  # claiming an allowed port is not enough
        with pytest.raises(FaultRefused, match=r"pid 777 is not in the environment \(allowed pids: 4242\)"):
            allow.check_pid(777, "X", port=port + 1)


def test_without_an_allow_list_the_recorded_environments_are_the_default(journal, state):
    write_json_atomic(state / "envs" / "env-1.json", {"id": "env-1", "ports": [5432], "redis": {"pid": 4242}})
    with FakeFault("in", [], port=5432):
        pass
    with pytest.raises(FaultRefused, match=r"127.0.0.1:6000 is not in the environment \(allowed: 127.0.0.1:5432\)"):
        FakeFault("out", [], port=6000).inject()
    assert journal.ids() == []
    (state / "envs" / "env-1.json").unlink()
    with FakeFault("no env: loopback only", [], port=6000):
        pass


def test_containers_by_name_or_id():
    allow = AllowList.of(containers=["redis-1", "0123456789abcdef"])
    allow.check_container(["/redis-1"], "X")
    allow.check_container(["0123456789abcdef0123"], "X")
    with pytest.raises(FaultRefused, match=r"container other is not in the environment \(allowed: 0123456789abcdef, redis-1\)"):
        allow.check_container(["other"], "X")


@pytest.mark.parametrize("pid", [0, 1, os.getpid(), os.getppid()])
def test_the_harness_and_its_parents_are_protected(pid):
    with pytest.raises(FaultRefused, match="the harness itself"):
        check_pid_safe(pid, "X")


def test_pause_of_own_pid_is_refused_before_journalling(journal):
    with pytest.raises(FaultRefused), PauseProcess(pids=[os.getpid()]):
        pass
    assert journal.ids() == []


def test_fault_outside_allow_list_is_refused(journal):
    allow = AllowList.of(endpoints=[("127.0.0.1", 5432)])
    with FakeFault("ok", [], port=5432, allow=allow):
        pass
    with pytest.raises(FaultRefused, match="127.0.0.1:6000 is not in the environment"), \
            FakeFault("no", [], port=6000, allow=allow):
        pass
    assert journal.ids() == []


def test_pause_needs_exactly_one_target():
    with pytest.raises(ValueError, match="exactly one"):
        PauseProcess()
    with pytest.raises(ValueError, match="exactly one"):
        PauseProcess(object(), pids=[5])
