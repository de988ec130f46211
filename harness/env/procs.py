"""Process-tree helpers: signal a whole tree, wait until it is gone (zombies count as gone)."""

from __future__ import annotations

import contextlib
import signal
import time

import psutil


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Send `sig` to pid and all its descendants; returns the pids signalled."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
    return [p.pid for p in procs]


def wait_gone(pids: list[int], timeout: float = 10.0) -> bool:
    """Wait until none of `pids` is alive (zombies of ours are reaped)."""
    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return wait_until(lambda: not any(alive(p) for p in pids), timeout=timeout, interval=0.005)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
