"""Restore test speed (issue 9): restore-to-checked of a pgbench database from a pgBackRest repository
vs a durable raw copy of the same data directory, side by side in one run; and the checks (excluding
pg_amcheck, reported separately) as a share of RTO.

Goals: restore + start + checks ≤ 1.3× the raw copy (copy + sync + start); checks ≤ 10 % of RTO.
    python bench/bench_restore_test.py --scale 70     # ~1.1 GB (the goal's size); --scale 5 for a quick look

Made fair as bench/bench_backup.py's raw copy is:
* the raw copy copies the SAME bytes the backup holds: the cleanly stopped data directory without
  pg_wal, plus the one segment with the last checkpoint (which a start needs). The pgbench load
  leaves ~0.9 GB of recycled, pre-allocated WAL segments in pg_wal that no restore needs; copying
  them too ("whole data directory", shown for reference) would flatter the restore.
* both sides are durable: the raw copy ends with `sync -f`; pgBackRest fsyncs every file it restores.
* `sync` before every measured step, so one step's (or the demo load's) writeback is not billed to the next.
* `--repeat` rounds of the three (raw copy, whole-directory copy, restore test), the order rotating each
  round (the file system here discards on delete: each step's teardown lands on whichever runs next);
  medians, ranges shown.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._table import publish  # noqa: E402
from bench.bench_backup import raw_backup, settle  # noqa: E402
from harness.config import parse_config  # noqa: E402
from harness.drill.demo import demo_pgbackrest  # noqa: E402
from harness.drill.restore_test import RestoreTestRunner  # noqa: E402
from harness.env.servers import chown_to_pg_user, pg_bindir  # noqa: E402
from resilience.backup.postgres import LocalCluster  # noqa: E402


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def raw_copy(data: Path, target: Path, whole: bool) -> float:
    """Copy (the same bytes as the backup, or the whole directory), sync, start, answer a query: seconds."""
    settle()
    t0 = time.monotonic()
    if whole:
        subprocess.run(["cp", "-a", str(data), str(target)], check=True)
    else:
        raw_backup(SimpleNamespace(bindir=pg_bindir(), data=data), target)
    subprocess.run(["sync", "-f", str(target)], check=True)
    c = LocalCluster(target)
    c.configure(archive_mode="off")
    c.start()
    c.wait_promoted()
    c.query("select count(*) from orders", dbname="shop")
    took = time.monotonic() - t0
    c.stop("immediate")
    shutil.rmtree(target)
    return took


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def rng(xs: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(min(xs))}–{fmt.format(max(xs))}" if len(xs) > 1 else ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=70)
    ap.add_argument("--repeat", type=int, default=3, help="round-robin rounds; medians count")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    results = Path(tempfile.mkdtemp(prefix="chaosdrill-bench-rt-"))
    chown_to_pg_user(results)
    cfg = parse_config({"run": {"results_dir": str(results)}}, "bench")
    raw: list[float] = []
    whole: list[float] = []
    runs: list[dict] = []
    try:
        with demo_pgbackrest(cfg.environment.local, rows=1000, scale=args.scale) as source:
            data = Path(source.path).parent.parent / "pg" / "data"
            size, wal = dir_size(data), dir_size(data / "pg_wal")
            run_cfg = cfg.model_copy(update={"restore_test": cfg.restore_test.model_copy(update={"pgbackrest": source})})

            def restore_test() -> None:
                settle()
                out = RestoreTestRunner(run_cfg, results).run()
                if out.verdict.value != "passed":
                    raise SystemExit(f"restore test {out.summary()}: {out.error}")
                m = out.measurements
                steps = {k: v or 0.0 for k, v in m.steps.items()}
                runs.append({"run_id": out.run_id, "steps": steps, "rto_s": m.rto_s,
                             "to_checked_s": sum(steps[k] for k in ("restore", "start", "checks")),
                             "checks_share": steps["checks"] / m.rto_s})

            methods = [lambda: raw.append(raw_copy(data, results / "raw", whole=False)),
                       lambda: whole.append(raw_copy(data, results / "whole", whole=True)), restore_test]
            for i in range(args.repeat):  # the order rotates: each method follows each other one (writeback, discard)
                for fn in methods[i % 3:] + methods[:i % 3]:
                    fn()
        col = {k: [r["steps"][k] for r in runs] for k in ("verify", "restore", "start", "checks", "amcheck")}
        to_checked = [r["to_checked_s"] for r in runs]
        rto = [r["rto_s"] for r in runs]
        share = [r["checks_share"] for r in runs]
        ratio, ratio_whole = med(to_checked) / med(raw), med(to_checked) / med(whole)
        per_round = [t / r for t, r in zip(to_checked, raw, strict=True)]
        met = {"≤ 1.3× raw copy": ratio <= 1.3, "checks ≤ 10 % of RTO": med(share) <= 0.10}
        rows = [["data directory", f"{size / 1e9:.2f} GB", f"of which pg_wal {wal / 1e9:.2f} GB (recycled segments)", ""],
                ["raw copy (cp -a + sync -f + start), same bytes as the backup", f"{med(raw):.2f} s", rng(raw), "1.00×"],
                ["  for reference: whole data directory incl. pg_wal", f"{med(whole):.2f} s", rng(whole),
                 f"restore test {ratio_whole:.2f}× it"],
                ["restore test: restore + start/replay + checks", f"{med(to_checked):.2f} s", rng(to_checked),
                 f"{ratio:.2f}× raw (per round {rng(per_round)}; goal ≤ 1.3×)"],
                ["  restore (pgbackrest restore)", f"{med(col['restore']):.2f} s", rng(col["restore"]), ""],
                ["  start + WAL replay", f"{med(col['start']):.2f} s", rng(col["start"]), ""],
                ["  checks (excluding pg_amcheck)", f"{med(col['checks']):.2f} s", rng(col["checks"]),
                 f"{med(share):.1%} of RTO (per round {rng(share, '{:.1%}')}; goal ≤ 10 %)"],
                ["  verify (reported separately)", f"{med(col['verify']):.2f} s", rng(col["verify"]), ""],
                ["  pg_amcheck (reported separately)", f"{med(col['amcheck']):.2f} s", rng(col["amcheck"]), ""],
                ["RTO (declared → ready)", f"{med(rto):.2f} s", rng(rto), "passed"]]
        title = (f"Restore test vs raw copy, pgbench -s {args.scale}, median of {args.repeat} round-robin rounds: "
                 + "; ".join(f"{k}: {'MET' if v else 'MISSED'}" for k, v in met.items()))
        publish("restore_test", title, ["what", "median", "range", "ratio"], rows,
                extra={"command": " ".join(sys.argv), "scale": args.scale, "repeat": args.repeat,
                       "data_bytes": size, "pg_wal_bytes": wal, "raw_s": raw, "whole_dir_s": whole, "runs": runs,
                       "ratio_vs_raw_copy": ratio, "ratio_vs_whole_dir_copy": ratio_whole,
                       "checks_share_of_rto": med(share), "goals_met": met},
                write=not args.no_write)
    finally:
        shutil.rmtree(results, ignore_errors=True)


if __name__ == "__main__":
    main()
