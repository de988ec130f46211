"""Fixtures for fault integration tests: a real Docker engine, a tiny redis image, host-network containers.

`docker_engine` runs scripts/ensure-docker.sh (installs docker.io, starts a bridge-less dockerd) and
skips with one line only when no engine can be had; every container is labelled chaosdrill.test=1,
uses the host's network on a free loopback port, and is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness.env.ports import free_port
from tests.integration.faults.helpers import redis_ping

ROOT = Path(__file__).resolve().parents[3]
TEST_IMAGE = "chaosdrill-test-redis:7"
TEST_LABEL = "chaosdrill.test"


OWNER_LABEL = "chaosdrill.test.owner"  # the pytest process that made it: parallel sessions keep theirs


def _remove_test_containers(client) -> None:
    """Remove this session's test containers and those of sessions that died, never a live one's."""
    import docker.errors
    import psutil

    for c in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}=1"}):
        owner = int(c.labels.get(OWNER_LABEL) or 0)
        if owner == os.getpid() or not psutil.pid_exists(owner):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker client for a live local engine with TEST_IMAGE built; skip only if no engine starts."""
    import docker

    setup = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")], capture_output=True,
                           text=True, timeout=900)
    if setup.returncode != 0:
        reason = (setup.stderr.strip().splitlines() or ["ensure-docker.sh failed"])[-1]
        pytest.skip(f"no Docker engine: {reason}")
    build = subprocess.run(["bash", str(ROOT / "scripts" / "build-test-image.sh"), TEST_IMAGE],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, f"building {TEST_IMAGE} failed: {build.stderr.strip()}"
    client = docker.from_env()
    _remove_test_containers(client)
    yield client
    _remove_test_containers(client)
    client.close()


def run_redis_container(client, tag: str = ""):
    """A redis container on the host network, bound to 127.0.0.1:<free port>, answering PING."""
    port = free_port()
    name = f"chaosdrill-test-{tag or 'redis'}-{uuid.uuid4().hex[:8]}"
    container = client.containers.run(
        TEST_IMAGE, ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        name=name, network_mode="host", detach=True, labels={TEST_LABEL: "1", "chaosdrill.test.name": name,
                                                       OWNER_LABEL: str(os.getpid())})
    deadline = time.monotonic() + 10
    while not redis_ping(port):
        assert time.monotonic() < deadline, f"{name} did not answer PING on 127.0.0.1:{port}"
        time.sleep(0.02)
    container.port_ = port
    return container


@pytest.fixture
def redis_container(docker_engine):
    container = run_redis_container(docker_engine)
    yield container
    container.remove(force=True)
