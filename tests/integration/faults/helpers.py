"""Small probes and adapters shared by the fault integration tests."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import psutil

from harness.faults.process import RestartRecipe


def redis_ping(port: int, timeout: float = 0.5) -> bool:
    """One PING over a fresh connection; False on refusal, timeout or a wrong answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_ping(port: int, timeout: float = 10.0) -> bool:
    """Poll PING until it answers: a restarted server needs a moment before it listens."""
    deadline = time.monotonic() + timeout
    while not redis_ping(port, timeout=0.3):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return False


@dataclass
class Named:
    """Gives a server a `name` and a `restart_recipe()`, as the environment's services will."""

    server: Any
    name: str

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.server, attr)

    def restart_recipe(self) -> RestartRecipe:
        srv = self.server
        argv = getattr(srv, "argv", None) or getattr(srv, "args", None)
        if argv is not None:  # RedisServer: runs in the foreground, detached by cleanup
            return RestartRecipe(tuple(argv()), cwd=str(srv.base), port=srv.port)
        return RestartRecipe((str(srv.bindir / "pg_ctl"), "-D", str(srv.data), "-l", str(srv.log), "-w", "start"),
                             cwd=str(srv.base), user="postgres", port=srv.port)
