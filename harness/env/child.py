"""A detached child process (own session, log file) that faults can kill, pause and restart.

Redis, the reference app and the embedded Toxiproxy all run this way: started by argv, ready
when a probe says so, stopped by pid — also from another process, since `chaosdrill env up`
leaves them running after it exits.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil

from harness.crashpoints import crash_point
from harness.env.ports import LOOPBACK, port_in_use
from harness.env.procs import MARKER_ENV, child_env, kill_tree, wait_gone, wait_until
from harness.errors import EnvironmentStartError
from harness.scope import RestartRecipe


class ChildProcess:
    """Lifecycle of one detached process; subclasses give `argv()` and `ready()`."""

    name = "process"
    start_timeout = 20.0

    def __init__(self, base: Path, port: int) -> None:
        self.base = Path(base)
        self.port = port
        self.pid: int | None = None
        self._popen: subprocess.Popen | None = None
        # Called after every successful (re)start, e.g. by a KillProcess revert: the environment
        # re-records the new pid there, so crash cleanup never kills a stale one.
        self.on_start: Callable[[], None] | None = None
        # CHAOSDRILL_CHILD of the process (the owning record's marker, written before any start):
        # cleanup finds it by that when the harness died before it knew or recorded the pid.
        self.marker: str | None = None

    @property
    def log(self) -> Path:
        return self.base / f"{self.name}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return port_in_use(self.port)

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if port_in_use(self.port):
            raise EnvironmentStartError(f"{self.name}: port {self.port} on {LOOPBACK} is already in use")
        with open(self.log, "ab") as log:
            self._popen = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                           cwd=self.base, start_new_session=True, env=child_env(self.marker))
        crash_point(f"{self.name}.after_spawn")  # redis, app, toxiproxy
        self.pid = self._popen.pid
        popen = self._popen
        if not wait_until(lambda: popen.poll() is not None or self.ready(), timeout=self.start_timeout):
            self.kill()
            raise EnvironmentStartError(f"{self.name} was not ready on {LOOPBACK}:{self.port} within "
                                        f"{self.start_timeout:.0f} s; see {self.log}")
        if popen.poll() is not None:
            self.pid = None
            raise EnvironmentStartError(f"{self.name} exited with code {popen.returncode}; see {self.log}")
        if self.on_start is not None:
            self.on_start()

    def running(self) -> bool:
        if self.pid is None:
            return False
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def _signal(self, sig: int, wait: bool) -> list[int]:
        if not self.running():
            return []
        pids = kill_tree(self.pid, sig)
        if wait:
            if self._popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(timeout=10)
            wait_gone(pids)
        return pids

    def stop(self) -> None:
        """SIGTERM (after SIGCONT: a paused process cannot handle it), SIGKILL if it lingers."""
        self._signal(signal.SIGCONT, wait=False)
        self._signal(signal.SIGTERM, wait=True)
        if self.running():
            self._signal(signal.SIGKILL, wait=True)
        self.pid = None

    def kill(self) -> list[int]:
        pids = self._signal(signal.SIGKILL, wait=True)
        self.pid = None
        return pids

    def restart_recipe(self) -> RestartRecipe:
        """How `chaosdrill cleanup` restarts this process after a harness killed mid-fault."""
        return RestartRecipe(tuple(self.argv()), cwd=str(self.base), port=self.port,
                             env={MARKER_ENV: self.marker} if self.marker else None)

    def pause(self) -> list[int]:
        return self._signal(signal.SIGSTOP, wait=False)

    def resume(self) -> list[int]:
        return self._signal(signal.SIGCONT, wait=False)
