"""Achieved RPO over repeated short DR drills: archive_timeout off, archive_timeout = 1 s, crashed primary's WAL pushed.

Run: ``.venv/bin/python bench/bench_rpo.py [--drills 10] [--quick]``

A full ``DrillRunner`` drill (app, Redis, fresh environment, report) takes ≈ 25 s here, so 30 of
them would not fit the ≈ 8 min budget of ``make bench``. Each drill below is the RPO-relevant core
of one, on the same engine code and the same definitions (``harness.measure.measure_drill``,
docs/metrics.md, "Disaster recovery drills"):

    new PostgreSQL 15 (archive_command → pgBackRest, synchronous_commit on, the lever's
    archive_timeout) ─► stanza-create ─► CanaryWriter (a sequenced row every 100 ms)
    ─► BackupManager.backup("full") ─► hold a random 1.5–3.5 s ─► DISASTER: pg_ctl stop -m immediate
    ─► [push_wal: PgBackRest.push_wal of the crashed data dir] ─► BackupManager.restore("latest")
    into a new directory (start, replay until promoted) ─► newest canary row restored

RPO = t_disaster − commit time of the newest restored canary row; rows lost = highest sequence
acknowledged before the disaster − highest restored. The random hold puts the disaster at a
random phase of archive_timeout's WAL switches. Goal (issue 5): RPO ≤ 1 s, judged on every drill
(the max). Writes bench/results/rpo.md and .json.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._table import publish  # noqa: E402
from harness.canary import CanaryWriter  # noqa: E402
from harness.env.servers import PostgresServer, chown_to_pg_user  # noqa: E402
from harness.measure import CANARY_RESTORED, DRILL_DECLARED, DRILL_DISASTER, measure_drill  # noqa: E402
from harness.timeline import Timeline  # noqa: E402
from resilience.backup import BackupManager, LocalRepository, PgBackRest, RestoreTargets  # noqa: E402

GOAL_RPO_S = 1.0
CONFIGS = (  # name, archive_timeout (s, 0 = off), push the crashed primary's WAL
    ("archive_timeout off", 0.0, False),
    ("archive_timeout = 1 s", 1.0, False),
    ("push_wal (archive_timeout off)", 0.0, True),
)


def make_template(root: Path) -> PostgresServer:
    """initdb once (it takes 0.5–5 s on a busy 2-core machine); each drill starts from a copy of it."""
    template = PostgresServer(root / "template")
    template.init()
    return template


def one_drill(base: Path, template: PostgresServer, archive_timeout: float, push_wal: bool, hold: float) -> dict:
    """One lean drill in `base` on a copy of `template`; returns its measurements (RPO, rows lost, timings)."""
    tl = Timeline()
    base.mkdir(parents=True)
    chown_to_pg_user(base)
    repo = LocalRepository(base / "repo")
    repo.init()
    pg = PostgresServer(base / "src")
    br = PgBackRest(repo=repo, workdir=base / "pgbr", pg_data=pg.data, pg_port=pg.port, pg_socket_dir=pg.base)
    pg.settings = br.archive_settings(archive_timeout=archive_timeout or None) | {"synchronous_commit": "on"}
    restored = None
    canary = None
    try:
        pg.base.mkdir(parents=True)
        chown_to_pg_user(pg.base)
        subprocess.run(["cp", "-a", str(template.data), str(pg.data)], check=True)  # keeps the postgres owner
        pg.write_settings()
        pg.start()
        mgr = BackupManager(repo, pg=br)
        mgr.setup()
        canary = CanaryWriter(pg.port, tl, interval_s=0.1).start()
        backup = mgr.backup("full")
        time.sleep(hold)
        canary.disaster()
        t_kill = tl.now_ns()
        pg.stop("immediate")
        tl.event(DRILL_DISASTER, "drill", kill_started_ns=t_kill, what="pg_ctl stop -m immediate")
        tl.event(DRILL_DECLARED, "drill", detection_delay_s=0.0)
        pushed: list[str] = []
        if push_wal:
            pushed = br.push_wal(pg.data)
        canary.stop()
        t0 = time.monotonic()
        restored = mgr.restore("latest", RestoreTargets(pg_data=base / "restored"))
        restore_s = time.monotonic() - t0
        max_seq, newest = restored.postgres.query(
            "SELECT max(seq), (SELECT written_at FROM canary ORDER BY seq DESC LIMIT 1) FROM canary")[0]
        tl.event(CANARY_RESTORED, "drill", max_seq=max_seq, max_written_at=newest.isoformat() if newest else None)
        m = measure_drill(tl, backup_end_wall=backup.finished_at)
        return {"rpo_s": m.rpo_s, "rows_lost": m.rows_lost, "rows_acknowledged": m.rows_acknowledged,
                "rows_restored": m.rows_restored, "hold_s": hold, "backup_age_s": m.backup_age_s,
                "restore_to_promoted_s": restore_s, "pushed_wal": pushed}
    finally:
        if canary is not None:
            canary.stop()
        if restored is not None:
            restored.stop()
        pg.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drills", type=int, default=10, help="drills per configuration (default 10)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 drills per configuration, 1–2 s holds; "
                    "results are printed, not written to bench/results/")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    n, holds = (2, (1.0, 2.0)) if args.quick else (args.drills, (1.5, 3.5))
    rnd = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="bench-rpo-"))
    chown_to_pg_user(root)
    t_start = time.monotonic()
    template = make_template(root)
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in CONFIGS}
    try:
        for i in range(n):  # round-robin, so a slow minute of the machine is shared by all configurations
            for k, (name, timeout, push) in enumerate(CONFIGS):
                r = one_drill(root / f"d{i}-{k}", template, timeout, push, rnd.uniform(*holds))
                runs[name].append(r)
                print(f"drill {i + 1}/{n} {name}: RPO {r['rpo_s']:.3f} s, {r['rows_lost']} rows lost "
                      f"(hold {r['hold_s']:.1f} s)", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows, summary = [], {}
    for name, timeout, push in CONFIGS:
        rpo = [r["rpo_s"] for r in runs[name]]
        lost = [r["rows_lost"] for r in runs[name]]
        met = max(rpo) <= GOAL_RPO_S
        summary[name] = {"archive_timeout_s": timeout, "push_wal": push, "rpo_median_s": statistics.median(rpo),
                         "rpo_p90_s": p90(rpo), "rpo_max_s": max(rpo), "rows_lost_median": statistics.median(lost),
                         "rows_lost_max": max(lost), "goal_met": met}
        rows.append([name, len(rpo), f"{statistics.median(rpo):.3f}", f"{p90(rpo):.3f}", f"{max(rpo):.3f}",
                     f"{statistics.median(lost):g}", f"{p90([float(x) for x in lost]):.0f}", max(lost),
                     "MET" if met else "MISSED"])
    title = (f"Achieved RPO over {n} drills per lever (disaster {holds[0]:g}–{holds[1]:g} s after a full backup, "
             "canary every 100 ms; "
             f"goal RPO ≤ {GOAL_RPO_S:g} s on every drill)")
    columns = ["lever", "drills", "RPO median s", "RPO p90 s", "RPO max s", "rows lost median", "rows lost p90",
               "rows lost max", f"goal ≤ {GOAL_RPO_S:g} s"]
    extra = {"drills_per_config": n, "seed": args.seed, "wall_s": time.monotonic() - t_start,
             "summary": summary, "runs": runs}
    publish("rpo", title, columns, rows, extra, write=not args.quick)
    print(f"{3 * n} drills in {time.monotonic() - t_start:.0f} s")


if __name__ == "__main__":
    main()
