"""Locust beyond one core: requests/s of one Locust process vs a master + N workers (`load.workers`)
against the reference app on this machine, and the CPU the load processes themselves cost.

The app, PostgreSQL and Redis share the same cores as Locust, so on a small machine the app, not
Locust, may be the ceiling: the CPU columns say which. The machine may be shared: the load average
before and after each mode is recorded with it.

    .venv/bin/python bench/bench_load_workers.py [--seconds 20] [--users 60] [--workers 0,1,2] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._table import publish  # noqa: E402
from harness.env.local import LocalEnvironment  # noqa: E402
from harness.load import LoadRun  # noqa: E402


def cpu_of(pids: list[int], last: dict[int, float]) -> None:
    """User + system CPU seconds of each Locust process (and its children), the last value seen."""
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            t = proc.cpu_times()
            last[pid] = t.user + t.system + sum(c.cpu_times().user + c.cpu_times().system
                                                for c in proc.children(recursive=True))
        except psutil.Error:
            pass


def one(app_url: str, workers: int, seconds: float, users: int, out: Path) -> dict:
    load0 = os.getloadavg()[0]
    host_cpu0 = psutil.cpu_times()
    run = LoadRun(app_url, out / f"w{workers}", users=users, spawn_rate=max(users, 10), throughput_per_user=100,
                  max_duration_s=seconds + 120, workers=workers)
    last: dict[int, float] = {}
    t0 = time.monotonic()
    with run:
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            cpu_of(run.pids, last)
    host_cpu1 = psutil.cpu_times()
    wall = time.monotonic() - t0
    busy = sum(getattr(host_cpu1, f) - getattr(host_cpu0, f) for f in ("user", "system", "nice", "irq", "softirq"))
    s = run.stats
    load_cpu = sum(last.values())
    return {"workers": workers, "rps": s.rps, "requests": s.requests, "failures": s.failures, "p50_ms": s.p50_ms,
            "p95_ms": s.p95_ms, "load_cpu_s": round(load_cpu, 1), "load_cpu_share": round(load_cpu / wall, 2),
            "cpu_ms_per_request": round(1000 * load_cpu / s.requests, 3) if s.requests else None,
            "host_cpu_busy": round(busy / wall, 2), "loadavg_before": round(load0, 2),
            "loadavg_after": round(os.getloadavg()[0], 2), "errors": s.errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = []
    with LocalEnvironment() as env, tempfile.TemporaryDirectory() as tmp:
        for workers in [int(w) for w in args.workers.split(",")]:
            results.append(one(env.app_url, workers, args.seconds, args.users, Path(tmp)))
    columns = ["mode", "requests/s", "requests", "failures", "p50 ms", "p95 ms", "Locust CPU s",
               "Locust cores used", "Locust CPU ms/request", "host CPU busy (cores)", "load avg before → after"]
    rows = [[("1 Locust process" if r["workers"] == 0 else f"master + {r['workers']} worker(s)"), r["rps"],
             r["requests"], r["failures"], r["p50_ms"], r["p95_ms"], r["load_cpu_s"], r["load_cpu_share"],
             r["cpu_ms_per_request"], r["host_cpu_busy"], f"{r['loadavg_before']} → {r['loadavg_after']}"]
            for r in results]
    publish("load_workers", f"Locust load: one process vs master + workers ({args.users} users, "
            f"{args.seconds:g} s each, reference app on the same {psutil.cpu_count()} cores)", columns, rows,
            extra={"results": results, "cpus": psutil.cpu_count(), "seconds": args.seconds, "users": args.users,
                   "note": "shared machine: the app, PostgreSQL, Redis and Locust compete for the same cores; "
                           "the load average is recorded per mode"},
            write=not args.no_write)


if __name__ == "__main__":
    main()
