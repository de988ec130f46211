"""Container faults through the Docker SDK: kill, pause, stop, restart; chosen by name or label.

    KillContainer     enter: SIGKILL, wait for exit    exit: start again
    StopContainer     enter: SIGTERM (then SIGKILL)    exit: start again
    PauseContainer    enter: freeze (cgroup freezer)   exit: unpause   -- TCP still accepted: a gray failure
    RestartContainer  enter: restart                   exit: make sure it runs

Every docker error is translated once, in `docker_errors()`, into a one-line `ContainerError`.
The engine must be local (unix socket or a loopback TCP address).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import docker
import docker.errors
import requests

from harness.errors import ContainerError, FaultRefused
from harness.faults.base import AllowList, Fault, require_loopback
from harness.faults.journal import undo_action

__all__ = ["KillContainer", "PauseContainer", "RestartContainer", "StopContainer", "docker_client"]


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(str(text).split())


@contextlib.contextmanager
def docker_errors(what: str, url: str | None = None) -> Iterator[None]:
    """The one boundary where docker and requests errors become ContainerError."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise ContainerError(f"{what}: not found: {_one_line(exc)}") from exc
    except docker.errors.APIError as exc:
        raise ContainerError(f"{what}: Docker engine refused: {_one_line(exc)}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException, ConnectionError) as exc:
        where = url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise ContainerError(f"{what}: Docker engine unreachable at {where}; start one "
                             f"(scripts/ensure-docker.sh) or set DOCKER_HOST ({_one_line(exc)})") from exc


def check_local_engine(url: str | None) -> None:
    """Refuse a Docker engine that is not on this host (faults stay on loopback)."""
    url = url or os.environ.get("DOCKER_HOST")
    if not url or url.startswith(("unix://", "npipe://")):
        return
    require_loopback(urlsplit(url).hostname or "", f"Docker engine {url}")


def docker_client(url: str | None = None) -> docker.DockerClient:
    check_local_engine(url)
    with docker_errors("connecting", url):
        client = docker.DockerClient(base_url=url) if url else docker.from_env()
        client.ping()
    return client


def _wait_status(container: Any, wanted: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        if container.status in wanted or time.monotonic() > deadline:
            return container.status
        time.sleep(0.02)


def _ensure_running(container: Any, timeout: float = 30.0) -> str:
    """Idempotent undo of kill/stop/pause: unpause a paused container, start a stopped one."""
    container.reload()
    if container.status == "paused":
        container.unpause()
        return "unpaused"
    if container.status in ("running", "restarting"):
        return "already running"
    container.start()
    status = _wait_status(container, {"running"}, timeout)
    if status != "running":
        raise ContainerError(f"container {container.name} is {status} after start")
    return "started"


class ContainerFault(Fault):
    """Shared selection (name or label), allow-list check and journalling of container faults."""

    record_type: ClassVar[str] = "container_stopped"
    env_scoped: ClassVar[bool] = False  # no local environment owns containers: pass `allow` to confine

    def __init__(self, name: str | None = None, *, label: str | dict[str, str] | None = None,
                 docker_url: str | None = None, client: docker.DockerClient | None = None,
                 timeout: float = 30.0, **kw: Any) -> None:
        super().__init__(**kw)
        if (name is None) == (label is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of: a container name, label=...")
        self.name = name
        self.label_filter = label
        self.docker_url = docker_url
        self._docker = client
        self.timeout = timeout
        self.containers: list[Any] = []

    def target_label(self) -> str:
        if self.name is not None:
            return self.name
        if isinstance(self.label_filter, dict):
            return ",".join(f"{k}={v}" for k, v in self.label_filter.items())
        return str(self.label_filter)

    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = docker_client(self.docker_url)
        return self._docker

    def _labels(self) -> list[str]:
        if isinstance(self.label_filter, dict):
            return [f"{k}={v}" for k, v in self.label_filter.items()]
        return [str(self.label_filter)]

    def _prepare(self) -> None:
        check_local_engine(self.docker_url)
        with docker_errors(self.label, self.docker_url):
            if self.name is not None:
                try:
                    self.containers = [self.docker().containers.get(self.name)]
                except docker.errors.NotFound:
                    raise FaultRefused(f"{self.label}: no container named {self.name!r}") from None
            else:
                self.containers = self.docker().containers.list(filters={"label": self._labels()})
                if not self.containers:
                    raise FaultRefused(f"{self.label}: no running container has label {self.target_label()}")

    def _check(self, allow: AllowList | None) -> None:
        for c in self.containers:
            if c.status != "running":
                raise FaultRefused(f"{self.label}: container {c.name} is {c.status}, not running")
            if allow is not None:
                allow.check_container([c.name, c.id], self.label)

    # How long the engine may still be acting after the harness died mid-apply (a stop waits for
    # its SIGTERM grace period): cleanup lets a running container settle that long before judging.
    settle_s: ClassVar[float] = 2.0

    def journal_record(self) -> dict[str, Any]:
        return {"type": self.record_type, "containers": [c.id for c in self.containers],
                "names": [c.name for c in self.containers], "docker": self.docker_url,
                "settle_s": self.settle_s}

    def _apply(self) -> None:
        with docker_errors(self.label, self.docker_url):
            for c in self.containers:
                self._act(c)

    def _revert(self) -> None:
        with docker_errors(self.label, self.docker_url):
            for c in reversed(self.containers):
                with contextlib.suppress(docker.errors.NotFound):  # removed meanwhile: nothing to bring back
                    _ensure_running(c, self.timeout)

    def _act(self, container: Any) -> None:
        raise NotImplementedError


class KillContainer(ContainerFault):
    """SIGKILL the container's main process (exit 137), as an OOM kill would; start it again on exit."""

    def _act(self, container: Any) -> None:
        container.kill()
        container.wait(timeout=self.timeout)


class StopContainer(ContainerFault):
    """Stop gracefully (SIGTERM, SIGKILL after `stop_timeout` s); start it again on exit."""

    def __init__(self, name: str | None = None, *, stop_timeout: int = 10, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.stop_timeout = stop_timeout
        self.settle_s = stop_timeout + 2.0

    def _act(self, container: Any) -> None:
        container.stop(timeout=self.stop_timeout)


class RestartContainer(ContainerFault):
    """Restart now (a crash-and-recover blip); on exit only make sure it runs."""

    def _act(self, container: Any) -> None:
        container.restart(timeout=0)


class PauseContainer(ContainerFault):
    """Freeze every process of the container; the kernel still accepts connections that never answer."""

    record_type: ClassVar[str] = "container_paused"

    def _act(self, container: Any) -> None:
        container.pause()


def _undo_containers(record: dict[str, Any]) -> str:
    check_local_engine(record.get("docker"))
    done = []
    client = docker_client(record.get("docker"))
    try:
        for cid, name in zip(record["containers"], record.get("names") or record["containers"], strict=False):
            with docker_errors(f"container {name}", record.get("docker")):
                try:
                    container = client.containers.get(cid)
                except docker.errors.NotFound:
                    done.append(f"{name} gone")
                    continue
                # killed mid-apply: a stop or kill the engine is still carrying out shows "running"
                # until the container exits; judging it at once would leave it stopped after cleanup
                _wait_status(container, {"exited", "dead", "paused", "created"}, float(record.get("settle_s", 2.0)))
                done.append(f"{name} {_ensure_running(container)}")
    finally:
        client.close()
    return ", ".join(done) or "no containers"


undo_action("container_paused")(_undo_containers)
undo_action("container_stopped")(_undo_containers)
