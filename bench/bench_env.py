"""Local environment speed: PostgreSQL + Redis start-to-ready (target ≤ 3 s), the whole env with the app,
teardown, and the restart of a killed PostgreSQL (what a db_outage drill waits for).

    .venv/bin/python bench/bench_env.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._table import publish  # noqa: E402
from harness.env.local import LocalEnvironment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data: dict[str, list[float]] = {"pg+redis start-to-ready": [], "whole env up (pg, redis, app)": [],
                                    "env down (no leftovers)": [], "killed PostgreSQL restart-to-ready": []}
    for _ in range(args.repeat):
        env = LocalEnvironment(with_app=False)
        t0 = time.perf_counter()
        env.up()
        data["pg+redis start-to-ready"].append(time.perf_counter() - t0)
        env.down()
        env = LocalEnvironment()
        t0 = time.perf_counter()
        env.up()
        data["whole env up (pg, redis, app)"].append(time.perf_counter() - t0)
        env.postgres.kill()
        t0 = time.perf_counter()
        env.postgres.start()
        data["killed PostgreSQL restart-to-ready"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        env.down()
        data["env down (no leftovers)"].append(time.perf_counter() - t0)
    targets = {"pg+redis start-to-ready": 3.0}
    rows = []
    for name, values in data.items():
        target = targets.get(name)
        verdict = "" if target is None else ("met" if max(values) <= target else "MISSED")
        rows.append([name, f"{statistics.median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}",
                     f"≤ {target:g}" if target else "", verdict])
    publish("env", f"Local environment, seconds over {args.repeat} runs",
            ["step", "median s", "min s", "max s", "target s", "result"], rows, {"raw": data})


if __name__ == "__main__":
    main()
