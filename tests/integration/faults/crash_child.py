"""A harness stand-in for the crash test: applies and reverts a set of faults in a loop until killed.

    python -m tests.integration.faults.crash_child

runs as a *zygote*: imports everything once, then for each JSON config line on stdin forks a child
that loops over the faults, and prints `pid <child pid>`. The test SIGKILLs that child. Each child
prints `<pid> active` each time every fault is in effect, `<pid> cleared` after each revert. Forking
keeps a kill cycle at milliseconds instead of a Python start-up (imports of docker, httpx...) each.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from harness.env.ports import LOOPBACK, port_in_use
from harness.env.procs import kill_tree, listeners, wait_gone, wait_until
from harness.faults import (
    FaultSet,
    KillContainer,
    KillProcess,
    PartitionPort,
    PauseContainer,
    PauseProcess,
    RestartRecipe,
    StopContainer,
)
from harness.faults.network import LatencyToxic, ProxyDown, TimeoutToxic


class PortService:
    """A server known only by its argv and loopback port, as cleanup sees one: pid = whoever listens."""

    def __init__(self, name: str, argv: list[str], cwd: str, port: int) -> None:
        self.name, self.argv, self.cwd, self.port = name, argv, cwd, port

    @property
    def pid(self) -> int | None:
        return listeners({self.port}).get(self.port)

    def running(self) -> bool:
        return self.pid is not None

    def kill(self) -> list[int]:
        pid = self.pid
        pids = kill_tree(pid) if pid else []
        wait_gone(pids)
        wait_until(lambda: not port_in_use(self.port), timeout=5)
        return pids

    def start(self) -> None:
        subprocess.Popen(self.argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        if not wait_until(lambda: port_in_use(self.port), timeout=10):
            raise RuntimeError(f"{self.name} did not listen on {LOOPBACK}:{self.port}")

    def pause(self) -> list[int]:
        return []

    def resume(self) -> list[int]:
        return []

    def restart_recipe(self) -> RestartRecipe:
        return RestartRecipe(tuple(self.argv), cwd=self.cwd, port=self.port)


def faults(cfg: dict) -> list:
    made = [PauseProcess(pids=[cfg["pause_pid"]])]
    if cfg.get("kill"):
        made.append(KillProcess(PortService("redis-kill", **cfg["kill"])))
    if cfg.get("api"):
        made += [
            LatencyToxic(cfg["toxic_proxy"], latency=random.randint(10, 500), api=cfg["api"]),
            TimeoutToxic(cfg["toxic_proxy"], stream="upstream", api=cfg["api"]),
            ProxyDown(cfg["down_proxy"], api=cfg["api"]),
        ]
    if cfg.get("nft_port"):
        made.append(PartitionPort(cfg["nft_port"], mode=random.choice(["drop", "reject"]), backend="nft"))
    if cfg.get("iptables_port"):
        made.append(PartitionPort(cfg["iptables_port"], mode=random.choice(["drop", "reject"]), backend="iptables"))
    containers = cfg.get("containers") or {}
    if containers.get("pause"):
        made.append(PauseContainer(containers["pause"]))
    if containers.get("stop"):
        made.append(StopContainer(containers["stop"], stop_timeout=1))
    if containers.get("kill"):
        made.append(KillContainer(containers["kill"]))
    random.shuffle(made)
    return made


def loop(cfg: dict) -> None:
    random.seed(cfg.get("seed"))
    me = os.getpid()
    while True:
        with FaultSet(*faults(cfg)):
            print(f"{me} active", flush=True)
            time.sleep(random.uniform(0, cfg.get("hold", 0.05)))
        print(f"{me} cleared", flush=True)


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed children are reaped by the kernel
    for line in sys.stdin:
        cfg = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the child's own subprocesses are waited for
            try:
                loop(cfg)
            finally:
                os._exit(1)
        print(f"pid {pid}", flush=True)


if __name__ == "__main__":
    main()
