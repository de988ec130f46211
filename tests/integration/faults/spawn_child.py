"""A harness stand-in for the spawn crash test: records and spawns children until killed.

    python -m tests.integration.faults.spawn_child

runs as a *zygote* (like crash_child.py): imports once, then for each JSON config line on stdin forks
a child and prints `pid <child pid>`. The child arms the crash point `crash_at` (if any), then

    mode "load": LoadRun(host).start()                      (record → spawn Locust → record pid)
    mode "env":  LocalEnvironment(...).up(), then LoadRun(app) (record → dir → PostgreSQL, Redis,
                 Toxiproxy, the app → load)

prints `<pid> started` and sleeps until the test SIGKILLs it (or it kills itself at `crash_at`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from harness.config import LocalEnvConfig
from harness.crashpoints import CRASH_ENV
from harness.env.local import LocalEnvironment
from harness.load import LoadRun


def run(cfg: dict) -> None:
    if cfg.get("crash_at"):
        os.environ[CRASH_ENV] = cfg["crash_at"]
    out = Path(cfg["out"])
    if cfg["mode"] == "env":
        env = LocalEnvironment(LocalEnvConfig(proxy=cfg.get("proxy", True)), with_app=cfg.get("app", True),
                               label="spawncrash").up()
        host = env.app_url if env.app is not None else cfg["host"]
    else:
        host = cfg["host"]
    LoadRun(host, out, users=1, max_duration_s=120).start()
    print(f"{os.getpid()} started", flush=True)
    time.sleep(600)


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed children are reaped by the kernel
    for line in sys.stdin:
        cfg = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                run(cfg)
            finally:
                os._exit(1)
        print(f"pid {pid}", flush=True)


if __name__ == "__main__":
    main()
