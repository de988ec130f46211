"""Process-tree helpers: signal a whole tree, wait until it is gone (zombies count as gone); find
the children of a record by their marker.

Every child chaosdrill starts carries `CHAOSDRILL_CHILD=<token>` in its environment (inherited by
its own children: Locust's, PostgreSQL's backends), and the token is in the record written before
the child is spawned. So a harness killed after recording but before it learned (or recorded) a
pid leaves a child that cleanup still finds: "no pid yet" never means "gone".
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

from harness.crashpoints import CRASH_ENV

MARKER_ENV = "CHAOSDRILL_CHILD"


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


def listeners(ports: set[int], host: str = "127.0.0.1") -> dict[int, int]:
    """{port: pid} of the processes listening on `host`:port for each of `ports` that has one."""
    found: dict[int, int] = {}
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return found
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.pid and c.laddr and c.laddr.port in ports \
                and c.laddr.ip in (host, "0.0.0.0", "::", "::ffff:" + host):
            found.setdefault(c.laddr.port, c.pid)
    return found


def listens_on(pid: int, port: int, host: str = "127.0.0.1") -> bool:
    """True when `pid` or one of its descendants listens on host:port."""
    try:
        root = psutil.Process(pid)
        tree = {root.pid, *(c.pid for c in root.children(recursive=True))}
    except psutil.Error:
        return False
    return listeners({port}, host).get(port) in tree


def strays(base: str, ports: set[int] = frozenset()) -> list[int]:
    """Pids of processes that belong to an environment rooted at `base` though no record names them:
    their command line names `base`, their cwd is inside it, or they listen on one of its loopback
    `ports` with that port on their command line and no other environment's dir on it (a service
    restarted after the record was written)."""
    if not base or len(base) < 8:  # never sweep "/" or the like
        return []
    me = psutil.Process()
    spared = {0, 1, me.pid, *(p.pid for p in me.parents())}
    by_port = listeners(set(ports)) if ports else {}
    found: list[int] = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "terminal"]):
        if proc.pid in spared:
            continue
        cmdline = " ".join(proc.info.get("cmdline") or [])
        cwd = proc.info.get("cwd") or ""
        # cwd alone counts only for detached processes (ours run in sessions of their own, without a
        # terminal): a user's shell that happens to sit in the dir is not a leftover.
        inside = (cwd == base or cwd.startswith(base.rstrip("/") + "/")) and not proc.info.get("terminal")
        if base in cmdline or inside:
            found.append(proc.pid)
    for port, pid in by_port.items():
        if pid in spared or pid in found:
            continue
        try:
            proc = psutil.Process(pid)
            cmdline, cwd = proc.cmdline(), proc.cwd()
        except psutil.Error:
            continue
        # Another environment's service that got the port after ours died names its own dir.
        foreign = "chaosdrill-" in " ".join(cmdline) + " " + cwd
        if str(port) in cmdline and not foreign:
            found.append(pid)
    return found


def child_env(marker: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child recorded under `marker`: ours, the marker, `extra`; never the
    test-only crash points (a child must not kill itself at a harness's boundary)."""
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV} | (extra or {})
    if marker:
        env[MARKER_ENV] = marker
    return env


def marked(marker: str) -> list[int]:
    """Pids of live processes whose environment carries `marker` (this process and its parents spared)."""
    if not marker:
        return []
    me = psutil.Process()
    spared = {0, 1, me.pid, *(p.pid for p in me.parents())}
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid in spared:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(MARKER_ENV) == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
    return found


def kill_marked(marker: str, settle: float = 0.05, rounds: int = 5) -> list[int]:
    """SIGCONT + SIGKILL every process marked `marker` and wait until gone; returns their pids.

    Scans again until one finds nothing: a child forked by a harness killed before the child's
    exec() carries the marker only from its exec on, a moment later."""
    killed: list[int] = []
    for i in range(rounds):
        pids = [p for p in marked(marker) if p not in killed]
        if not pids and i > 0:
            break
        for pid in pids:
            kill_tree(pid, signal.SIGCONT)
            killed += [p for p in kill_tree(pid, signal.SIGKILL) if p not in killed]
        wait_gone(killed)
        time.sleep(settle)
    return killed
