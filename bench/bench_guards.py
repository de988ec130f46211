"""Stop conditions: time from a guard's threshold being crossed to the fault being reverted
(goal ≤ 2 probe intervals), on real db_outage runs (PostgreSQL SIGKILLed, availability floor 90 %).

    .venv/bin/python bench/bench_guards.py [--repeat 5]

Each run goes through `chaosdrill run --json`; the numbers are the run's own `abort` record:
crossing → revert start (the harness's reaction) and crossing → cleared (PostgreSQL restarted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._table import publish  # noqa: E402

CONFIG = """
[run]
probe_interval = "{interval}"
[load]
users = 4
throughput_per_user = 5
[scenarios.db_outage]
baseline = "2s"
hold = "10s"
after = "1s"
[scenarios.db_outage.guards.avail]
kind = "availability"
threshold = 0.9
window = "2s"
"""


def one(interval: str) -> dict:
    with tempfile.TemporaryDirectory() as work:
        Path(work, "chaosdrill.toml").write_text(CONFIG.format(interval=interval))
        proc = subprocess.run([sys.executable, "-m", "harness.cli_main", "run", "-m", "db_outage", "--json",
                               "--results", "res"], cwd=work, capture_output=True, text=True, timeout=300,
                              env=os.environ | {"COLUMNS": "200"})
        doc = json.loads(proc.stdout)
        return doc["runs"][0]["abort"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for interval in ("100ms",):
        aborts = [one(interval) for _ in range(args.repeat)]
        react = [a["time_to_revert_s"] * 1000 for a in aborts]
        cleared = [a["time_to_cleared_s"] * 1000 for a in aborts]
        budget = 2 * float(interval.removesuffix("ms"))
        rows.append([interval, len(aborts), f"{statistics.median(react):.0f}", f"{max(react):.0f}",
                     f"{budget:.0f}", "yes" if max(react) <= budget else "NO",
                     f"{statistics.median(cleared):.0f}", f"{max(cleared):.0f}"])
    publish("guards", "Stop condition: threshold crossed → fault reverted (db_outage kill, availability floor 90 %)",
            ["probe interval Δ", "runs", "→ revert start median ms", "max ms", "budget 2Δ ms", "within",
             "→ cleared median ms", "max ms"], rows, write=not args.no_write)


if __name__ == "__main__":
    main()
