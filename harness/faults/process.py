"""Process faults: SIGKILL a service (restart on the way out) and SIGSTOP/SIGCONT it.

    KillProcess(target)   enter: target.kill()   (the whole tree, as an OOM kill would)
                          exit:  target.start()  (unless something already restarted it)
    PauseProcess(target)  enter: SIGSTOP tree    exit: SIGCONT tree
    PauseProcess(pids=[..])   same, for raw pids the environment allows

A target is any object with `name`, `pid`, `port`, `kill()`, `start()`, `pause()`, `resume()`,
`running()` (PostgresServer, RedisServer). To be restartable by `chaosdrill cleanup` after a crash it
may also offer `restart_recipe() -> RestartRecipe`; without one, cleanup reports the kill and keeps it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import psutil

from harness.errors import FaultError, FaultRefused
from harness.faults.base import AllowList, Fault, check_pid_safe, require_loopback
from harness.faults.journal import undo_action
from harness.scope import RestartRecipe  # noqa: F401  (its home before harness.scope)

LOOPBACK = "127.0.0.1"


@runtime_checkable
class ProcessTarget(Protocol):
    """A service the environment can kill, start, pause and resume."""

    @property
    def pid(self) -> int | None: ...

    def kill(self) -> Any: ...

    def start(self) -> Any: ...

    def pause(self) -> Any: ...

    def resume(self) -> Any: ...

    def running(self) -> bool: ...


def target_name(target: object) -> str:
    return str(getattr(target, "name", None) or type(target).__name__)


def _identity(pid: int) -> list[Any] | None:
    """[pid, create_time]: a pid alone may be reused by an unrelated process before cleanup runs."""
    try:
        return [pid, psutil.Process(pid).create_time()]
    except psutil.Error:
        return None


def tree_of(pid: int) -> list[int]:
    try:
        root = psutil.Process(pid)
        return [root.pid, *(c.pid for c in root.children(recursive=True))]
    except psutil.Error:
        return []


def _same_process(ident: list[Any]) -> psutil.Process | None:
    pid, start = int(ident[0]), ident[1]
    try:
        proc = psutil.Process(pid)
        if start is not None and abs(proc.create_time() - float(start)) > 0.01:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def _signal_tree(pids: Iterable[int], sig: int) -> list[int]:
    """Signal each pid and its current descendants; returns those signalled."""
    done: list[int] = []
    for pid in pids:
        for member in tree_of(pid):
            if member in done:
                continue
            try:
                os.kill(member, sig)
                done.append(member)
            except ProcessLookupError:
                pass
    return done


def _check_target(target: object, allow: AllowList | None, what: str) -> int:
    pid = getattr(target, "pid", None)
    if pid is None or not target.running():
        raise FaultRefused(f"{what}: {target_name(target)} is not running")
    check_pid_safe(pid, what)
    port = getattr(target, "port", None)
    if port is not None:
        require_loopback(str(getattr(target, "host", LOOPBACK)), what)
    if allow is not None:
        allow.check_pid(pid, what, port=port)
    return pid


class KillProcess(Fault):
    """SIGKILL a service's process tree; leaving the block starts it again through `target.start()`."""

    def __init__(self, target: ProcessTarget, **kw: Any) -> None:
        super().__init__(**kw)
        self.target = target
        self.pids: list[list[Any]] = []

    def target_label(self) -> str:
        return target_name(self.target)

    def _prepare(self) -> None:
        pid = self.target.pid
        self.pids = [i for i in (_identity(p) for p in tree_of(pid) if pid) if i]

    def _check(self, allow: AllowList | None) -> None:
        _check_target(self.target, allow, self.label)

    def journal_record(self) -> dict[str, Any]:
        recipe_of = getattr(self.target, "restart_recipe", None)
        recipe = recipe_of() if callable(recipe_of) else None
        record = {"type": "process_killed", "name": target_name(self.target), "pids": self.pids,
                  "restart": None, "cwd": None, "user": None, "port": getattr(self.target, "port", None),
                  "env": None}
        if recipe is not None:
            record |= recipe.to_record()
        return record

    def _apply(self) -> None:
        self.target.kill()
        if self.target.running():
            raise FaultError(f"{self.label}: still running after kill()")

    def _revert(self) -> None:
        if not self.target.running():
            self.target.start()


class PauseProcess(Fault):
    """SIGSTOP a service's tree (or raw pids): connections are accepted by the kernel but never answered."""

    def __init__(self, target: ProcessTarget | None = None, *, pids: Iterable[int] = (), **kw: Any) -> None:
        super().__init__(**kw)
        if (target is None) == (not pids):
            raise ValueError("PauseProcess needs exactly one of: a target, pids=[...]")
        self.target = target
        self.raw_pids = [int(p) for p in pids]
        self.pids: list[list[Any]] = []

    def target_label(self) -> str:
        if self.target is not None:
            return target_name(self.target)
        return "pids " + ",".join(map(str, self.raw_pids))

    def _roots(self) -> list[int]:
        if self.target is not None:
            return [self.target.pid] if self.target.pid else []
        return self.raw_pids

    def _prepare(self) -> None:
        self.pids = [i for i in (_identity(p) for root in self._roots() for p in tree_of(root)) if i]

    def _check(self, allow: AllowList | None) -> None:
        if self.target is not None:
            _check_target(self.target, allow, self.label)
            return
        for pid in self.raw_pids:
            check_pid_safe(pid, self.label)
            if _identity(pid) is None:
                raise FaultRefused(f"{self.label}: no process with pid {pid}")
            if allow is not None:
                allow.check_pid(pid, self.label)

    def journal_record(self) -> dict[str, Any]:
        return {"type": "pause_process", "name": self.target_label(), "pids": self.pids}

    def _apply(self) -> None:
        if self.target is not None:
            self.target.pause()
        else:
            _signal_tree(self.raw_pids, signal.SIGSTOP)
        # Signals are asynchronous: `fault.active` must mean every process is really stopped.
        if not _wait_status(self.pids, stopped=True):
            raise FaultError(f"{self.label}: processes did not stop after SIGSTOP")

    def _revert(self) -> None:
        _resume(self.pids)
        if self.target is not None:
            self.target.resume()
        if not _wait_status(self.pids, stopped=False):
            raise FaultError(f"{self.label}: processes still stopped after SIGCONT")


def _wait_status(pids: list[list[Any]], stopped: bool, timeout: float = 5.0) -> bool:
    """Wait until every still-existing process of `pids` is (not) in the stopped state."""

    def settled() -> bool:
        for ident in pids:
            proc = _same_process(ident)
            try:
                if proc is not None and (proc.status() == psutil.STATUS_STOPPED) != stopped:
                    return False
            except psutil.Error:
                pass
        return True

    deadline = time.monotonic() + timeout
    while not settled():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _resume(pids: list[list[Any]]) -> list[int]:
    alive = [proc.pid for proc in (_same_process(i) for i in pids) if proc is not None]
    return _signal_tree(alive, signal.SIGCONT)


@undo_action("pause_process")
def undo_pause(record: dict[str, Any]) -> str:
    resumed = _resume(record["pids"])
    return f"sent SIGCONT to {len(resumed)} process(es) of {record.get('name', '?')}"


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, port)) == 0


@undo_action("process_killed")
def undo_kill(record: dict[str, Any], timeout: float = 30.0) -> str:
    name, port = record.get("name", "?"), record.get("port")
    if port and _port_open(int(port)):
        return f"{name} already answers on {LOOPBACK}:{port}"
    if not port and any(_same_process(i) for i in record.get("pids", [])):
        return f"{name} was never killed"
    argv = record.get("restart")
    if not argv:
        raise FaultError(f"{name} was killed and has no restart recipe; start it by hand")
    kwargs: dict[str, Any] = {}
    if record.get("user") and os.geteuid() == 0:
        kwargs |= {"user": record["user"], "group": record["user"]}
    env = None if not record.get("env") else {**os.environ, **record["env"]}
    proc = subprocess.Popen(argv, cwd=record.get("cwd"), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            **kwargs)
    if port:
        deadline = time.monotonic() + timeout
        while not _port_open(int(port)):
            if proc.poll() not in (None, 0) or time.monotonic() > deadline:
                raise FaultError(f"restarting {name} with {argv[0]} failed: no listener on "
                                 f"{LOOPBACK}:{port} (exit {proc.poll()})")
            time.sleep(0.02)
    proc.poll()  # reap a launcher that already exited (pg_ctl)
    return f"restarted {name} ({os.path.basename(argv[0])}, pid {proc.pid})"
