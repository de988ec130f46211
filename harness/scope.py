"""What a fault may touch (AllowList) and how a service it killed comes back (RestartRecipe).

Both `harness/env/` (which builds them for its services) and `harness/faults/` (which checks and uses
them) need these, so they live below both: `harness.env` never imports `harness.faults`
(tests/unit/test_import_graph.py keeps it so).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.env.procs import listens_on
from harness.errors import FaultRefused


def is_loopback(host: str) -> bool:
    """True when every address `host` names is loopback (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def require_loopback(host: str, what: str) -> None:
    if not is_loopback(host):
        raise FaultRefused(f"{what}: {host!r} is not a loopback address; faults stay on 127.0.0.0/8 and ::1")


@dataclass(frozen=True)
class AllowList:
    """What the configured environment lets faults touch; anything else is refused.

    Endpoints match by port among loopback hosts (127.0.0.1, localhost and ::1 are one host here).
    """

    endpoints: frozenset[tuple[str, int]] = frozenset()
    pids: frozenset[int] = frozenset()
    containers: frozenset[str] = frozenset()

    @classmethod
    def of(cls, endpoints: Iterable[tuple[str, int]] = (), pids: Iterable[int] = (),
           containers: Iterable[str] = ()) -> AllowList:
        return cls(frozenset((h, int(p)) for h, p in endpoints), frozenset(pids), frozenset(containers))

    def has_endpoint(self, host: str, port: int) -> bool:
        return any(p == port and is_loopback(h) for h, p in self.endpoints) and is_loopback(host)

    def check_endpoint(self, host: str, port: int, what: str) -> None:
        require_loopback(host, what)
        if not self.has_endpoint(host, port):
            allowed = ", ".join(f"{h}:{p}" for h, p in sorted(self.endpoints)) or "none"
            raise FaultRefused(f"{what}: {host}:{port} is not in the environment (allowed: {allowed})")

    def check_pid(self, pid: int, what: str, port: int | None = None) -> None:
        """A pid is allowed when listed, or when it (or a child) really listens on an allowed loopback
        port: a claimed port alone is not enough, or any process could be hit by naming one."""
        if pid in self.pids:
            return
        if port is not None and self.has_endpoint("127.0.0.1", port):
            if listens_on(pid, port):
                return
            raise FaultRefused(f"{what}: pid {pid} does not listen on 127.0.0.1:{port}, so that port "
                               "does not make it part of the environment")
        allowed = ", ".join(map(str, sorted(self.pids))) or "none"
        raise FaultRefused(f"{what}: pid {pid} is not in the environment (allowed pids: {allowed})")

    def __or__(self, other: AllowList) -> AllowList:
        return AllowList(self.endpoints | other.endpoints, self.pids | other.pids, self.containers | other.containers)

    def check_container(self, names: Iterable[str], what: str) -> None:
        names = [n.lstrip("/") for n in names if n]
        if not any(n in self.containers or any(n.startswith(c) and len(c) >= 12 for c in self.containers)
                   for n in names):
            allowed = ", ".join(sorted(self.containers)) or "none"
            raise FaultRefused(f"{what}: container {names[0] if names else '?'} is not in the environment "
                               f"(allowed: {allowed})")


@dataclass(frozen=True)
class RestartRecipe:
    """How to start a service again from a bare shell: argv run detached in `cwd` as `user`.

    `port` (loopback) tells cleanup the service is already up, and what to wait for after starting it.
    """

    argv: tuple[str, ...]
    cwd: str | None = None
    user: str | None = None
    port: int | None = None
    env: dict[str, str] | None = None

    def to_record(self) -> dict[str, Any]:
        return {"restart": list(self.argv), "cwd": self.cwd, "user": self.user, "port": self.port,
                "env": self.env}
