"""A harness stand-in for the crash test: applies and reverts a set of faults in a loop until killed.

    python -m tests.integration.faults.crash_child '<json config>'

Prints `active` each time every fault is in effect, `cleared` after each revert.
"""

from __future__ import annotations

import json
import random
import sys
import time

from harness.faults import FaultSet, PartitionPort, PauseContainer, PauseProcess
from harness.faults.network import LatencyToxic, ProxyDown, TimeoutToxic


def faults(cfg: dict) -> list:
    made = [PauseProcess(pids=[cfg["pause_pid"]])]
    if cfg.get("api"):
        made += [
            LatencyToxic(cfg["toxic_proxy"], latency=random.randint(10, 500), api=cfg["api"]),
            TimeoutToxic(cfg["toxic_proxy"], stream="upstream", api=cfg["api"]),
            ProxyDown(cfg["down_proxy"], api=cfg["api"]),
        ]
    if cfg.get("nft_port"):
        made.append(PartitionPort(cfg["nft_port"], mode=random.choice(["drop", "reject"])))
    if cfg.get("container"):
        made.append(PauseContainer(cfg["container"]))
    random.shuffle(made)
    return made


def main() -> None:
    cfg = json.loads(sys.argv[1])
    random.seed(cfg.get("seed"))
    while True:
        with FaultSet(*faults(cfg)):
            print("active", flush=True)
            time.sleep(random.uniform(0, cfg.get("hold", 0.05)))
        print("cleared", flush=True)


if __name__ == "__main__":
    main()
