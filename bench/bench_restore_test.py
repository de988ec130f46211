"""Restore test speed (issue 9): restore-to-checked of a pgbench database from a pgBackRest repository
vs a durable raw copy of the same data directory, side by side in one run; and the checks (excluding
pg_amcheck, reported separately) as a share of RTO.

Goals: restore + start + checks ≤ 1.3× the raw copy (copy + sync + start); checks ≤ 10 % of RTO.
    python bench/bench_restore_test.py --scale 70     # ~1.1 GB (the goal's size); --scale 5 for a quick look
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._table import publish  # noqa: E402
from harness.config import parse_config  # noqa: E402
from harness.drill.demo import demo_pgbackrest  # noqa: E402
from harness.drill.restore_test import RestoreTestRunner  # noqa: E402
from harness.env.servers import chown_to_pg_user  # noqa: E402
from resilience.backup.postgres import LocalCluster  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=70)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    results = Path(tempfile.mkdtemp(prefix="chaosdrill-bench-rt-"))
    chown_to_pg_user(results)
    cfg = parse_config({"run": {"results_dir": str(results)}}, "bench")
    try:
        with demo_pgbackrest(cfg.environment.local, rows=1000, scale=args.scale) as source:
            data = Path(source.path).parent.parent / "pg" / "data"
            size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
            # the raw copy: the cleanly stopped data directory, copied, synced, started
            target = results / "raw"
            t0 = time.monotonic()
            subprocess.run(["cp", "-a", str(data), str(target)], check=True)
            subprocess.run(["sync", "-f", str(target)], check=True)
            chown_to_pg_user(target)
            c = LocalCluster(target)
            c.configure(archive_mode="off")
            c.start()
            c.wait_promoted()
            c.query("select count(*) from orders", dbname="shop")
            raw = time.monotonic() - t0
            c.stop("immediate")
            shutil.rmtree(target)
            run_cfg = cfg.model_copy(update={"restore_test": cfg.restore_test.model_copy(update={"pgbackrest": source})})
            out = RestoreTestRunner(run_cfg, results).run()
        m = out.measurements
        steps = m.steps
        to_checked = sum(steps[k] or 0 for k in ("restore", "start", "checks"))
        rows = [["data directory", f"{size / 1e9:.2f} GB", ""],
                ["raw copy (cp -a + sync + start)", f"{raw:.2f} s", ""],
                ["restore test: restore + start/replay + checks", f"{to_checked:.2f} s",
                 f"{to_checked / raw:.2f}× raw (goal ≤ 1.3×)"],
                ["  restore (pgbackrest restore)", f"{steps['restore']:.2f} s", ""],
                ["  start + WAL replay", f"{steps['start']:.2f} s", ""],
                ["  checks (excluding pg_amcheck)", f"{steps['checks']:.2f} s",
                 f"{steps['checks'] / m.rto_s:.1%} of RTO (goal ≤ 10 %)" if m.rto_s else "RTO not measured"],
                ["  verify (reported separately)", f"{steps['verify']:.2f} s", ""],
                ["  pg_amcheck (reported separately)", f"{steps['amcheck'] or 0:.2f} s", ""],
                ["RTO (declared → ready)", f"{m.rto_s:.2f} s" if m.rto_s else "—", out.verdict.value]]
        publish("restore_test", f"Restore test vs raw copy, pgbench -s {args.scale}", ["what", "time", "ratio"], rows,
                extra={"command": " ".join(sys.argv), "steps": steps, "raw_s": raw, "rto_s": m.rto_s},
                write=not args.no_write)
    finally:
        shutil.rmtree(results, ignore_errors=True)


if __name__ == "__main__":
    main()
