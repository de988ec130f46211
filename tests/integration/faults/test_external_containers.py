"""An external stack's containers (services.*.container) on a real Docker engine: the named one can be
killed and comes back; any other container is refused by the environment's allow-list."""

from __future__ import annotations

import pytest

from harness.config import parse_config
from harness.env.external import ExternalEnvironment
from harness.errors import FaultRefused
from harness.faults.container import KillContainer
from tests.integration.faults.conftest import run_redis_container
from tests.integration.faults.helpers import redis_ping, wait_ping


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path / "state"))


def test_the_named_container_is_killed_and_restarted_others_are_refused(docker_engine, redis_container) -> None:
    other = run_redis_container(docker_engine, "other")
    try:
        cfg = parse_config({
            "environment": {"kind": "external", "external": {"app": "web"}}, "load": {"enabled": False},
            "services": {"web": {"kind": "http", "url": "http://127.0.0.1:9"},
                         "cache": {"kind": "redis", "address": f"127.0.0.1:{redis_container.port_}",
                                   "container": redis_container.name}}})
        env = ExternalEnvironment(cfg)
        assert env.service_of_kind("redis") == "cache"
        with KillContainer(env.container_for("cache"), allow=env.allow_list()):
            assert not redis_ping(redis_container.port_)
        assert wait_ping(redis_container.port_)
        with pytest.raises(FaultRefused, match=f"container {other.name} is not in the environment"), \
                KillContainer(other.name, allow=env.allow_list()):
            pass
        assert redis_ping(other.port_), "a refused fault must leave the container untouched"
    finally:
        other.remove(force=True)
