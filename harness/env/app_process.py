"""The reference app as a detached child process on a loopback port."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from harness.env.ports import LOOPBACK, port_in_use
from harness.env.servers import kill_tree, wait_gone, wait_until
from harness.errors import EnvironmentStartError


@dataclass
class AppProcess:
    """`python -m harness.app` with its own session, log file and events file."""

    base: Path
    port: int
    pg_dsn: str
    redis_url: str
    name: str = "app"
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log(self) -> Path:
        return self.base / "app.log"

    @property
    def events(self) -> Path:
        return self.base / "app-events.jsonl"

    def start(self, timeout: float = 20) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if port_in_use(self.port):
            raise EnvironmentStartError(f"app: port {self.port} on {LOOPBACK} is already in use")
        cmd = [sys.executable, "-m", "harness.app", "--host", LOOPBACK, "--port", str(self.port),
               "--pg-dsn", self.pg_dsn, "--redis-url", self.redis_url, "--events", str(self.events)]
        with open(self.log, "ab") as log:
            self._popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                           start_new_session=True)
        self.pid = self._popen.pid
        if not wait_until(lambda: self._answers() or self._popen.poll() is not None, timeout=timeout):
            self.kill()
            raise EnvironmentStartError(f"app did not answer on {self.url} within {timeout:.0f} s; see {self.log}")
        if self._popen.poll() is not None:
            raise EnvironmentStartError(f"app exited with code {self._popen.returncode}; see {self.log}")

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/metrics", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

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
            popen = getattr(self, "_popen", None)
            if popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=10)
            wait_gone(pids)
        return pids

    def stop(self) -> None:
        self._signal(signal.SIGCONT, wait=False)  # a paused app cannot handle SIGTERM
        if not self._signal(signal.SIGTERM, wait=True) or self.running():
            self._signal(signal.SIGKILL, wait=True)
        self.pid = None

    def kill(self) -> list[int]:
        pids = self._signal(signal.SIGKILL, wait=True)
        self.pid = None
        return pids

    def pause(self) -> list[int]:
        return self._signal(signal.SIGSTOP, wait=False)

    def resume(self) -> list[int]:
        return self._signal(signal.SIGCONT, wait=False)
