"""Backup and restore-to-verified time on a ≥ 1 GB database: pgBackRest vs pg_dump/pg_restore -j2 vs raw copy.

Run: ``.venv/bin/python bench/bench_backup.py [--scale 70] [--repeat 3]``

One PostgreSQL 15 (fsync on, as production would be) is filled with ``pgbench -i -s SCALE``
(scale 70 ≈ 1.1 GB) while archiving WAL to a local pgBackRest repository (lz4, process-max 2).
Then, for each method:

* pgBackRest — ``BackupManager.backup("full")``; restore = ``BackupManager.restore`` into a new
  directory (pgbackrest restore, start, replay until promoted);
* pg_dump    — ``pg_dump -Fc``; restore = initdb + start a fresh server + ``pg_restore -j2``;
* raw copy   — the physical limit, made fair: the cleanly stopped data directory WITHOUT pg_wal
  (only the segment holding the last checkpoint, which a start needs), i.e. the bytes pgBackRest
  restores too; restore = ``cp -a`` into a new directory + ``sync -f`` (durable, as pgBackRest and
  a fsync-on pg_restore are when they report success) + start.

pgBackRest restores with ``process-max`` 4 (restore only; backups stay at 2), no bundling on a
local repository, file log at ``info``, and ``recovery_init_sync_method=syncfs`` in the restored
cluster (one file-system sync instead of an fsync per file at startup).

"Verified" = the restored server answers and its row counts and ``sum(abalance)`` equal the
source's (one scan of pgbench_accounts). The source is stopped during the restores. Methods run
round-robin, ``--repeat`` rounds after one discarded warm-up round, each after a ``sync`` (so one
run's writeback is not billed to the next); the median counts. Goal: pgBackRest
restore-to-verified ≥ 3× faster than pg_restore -j2 and ≤ 1.5× the raw copy. Writes
bench/results/backup.md and .json.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._table import publish  # noqa: E402
from harness.env.servers import PostgresServer, chown_to_pg_user, run_as_pg_user  # noqa: E402
from resilience.backup import BackupManager, LocalRepository, PgBackRest, PgDumpEngine, RestoreTargets  # noqa: E402
from resilience.backup.postgres import LocalCluster  # noqa: E402

CHECK_SQL = ("select a.n, a.s, (select count(*) from pgbench_branches), (select count(*) from pgbench_tellers) "
             "from (select count(*) as n, sum(abalance) as s from pgbench_accounts) a")  # one scan of the big table


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def verify(cluster_query, expected) -> None:
    got = tuple(cluster_query(CHECK_SQL)[0])
    if got != expected:
        raise SystemExit(f"restored data differs: {got} != {expected}")


def settle() -> None:
    """Flush dirty pages first, so one run's writeback is not billed to the next."""
    subprocess.run(["sync"], check=True)


def raw_backup(pg: PostgresServer, dest: Path) -> None:
    """The cleanly stopped data dir minus pg_wal, plus the one segment with the last checkpoint."""
    out = subprocess.run([str(pg.bindir / "pg_controldata"), "-D", str(pg.data)], capture_output=True, text=True,
                         check=True, **run_as_pg_user()).stdout
    redo = next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Latest checkpoint's REDO WAL"))
    dest.mkdir()
    chown_to_pg_user(dest)
    entries = [str(p) for p in pg.data.iterdir() if p.name != "pg_wal"]
    subprocess.run(["cp", "-a", *entries, str(dest)], check=True)
    (dest / "pg_wal" / "archive_status").mkdir(parents=True)
    subprocess.run(["cp", "-a", str(pg.data / "pg_wal" / redo), str(dest / "pg_wal")], check=True)
    subprocess.run(["chown", "-R", "--reference", str(pg.data), str(dest / "pg_wal")], check=True)
    dest.chmod(0o700)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=70)
    ap.add_argument("--repeat", type=int, default=5, help="measured rounds (after one discarded warm-up)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--restore-process-max", type=int, default=4)
    ap.add_argument("--bundle", choices=("auto", "on", "off"), default="auto", help="auto = off on a local repo")
    ap.add_argument("--recovery", choices=("end", "immediate"), default="end")
    ap.add_argument("--log-level-file", default="info")
    ap.add_argument("--compress-type", choices=("auto", "lz4", "none", "zst", "gz"), default="auto",
                    help="pgBackRest repository compression (auto = the engine's choice: none on a local repo)")
    ap.add_argument("--no-write", action="store_true", help="print the table only (for trying settings)")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    chown_to_pg_user(base)
    pg = None
    try:
        repo = LocalRepository(base / "repo")
        repo.init()
        pg = PostgresServer(base / "src", fast=False)
        br = PgBackRest(repo=repo, workdir=base / "pgbr", pg_data=pg.data, pg_port=pg.port, pg_socket_dir=pg.base,
                        process_max=2, restore_process_max=args.restore_process_max,
                        bundle={"auto": None, "on": True, "off": False}[args.bundle],
                        log_level_file=args.log_level_file,
                        compress_type=None if args.compress_type == "auto" else args.compress_type)
        pg.settings = br.archive_settings() | {"max_wal_size": "'2GB'"}
        pg.init()
        pg.start()
        mgr = BackupManager(repo, pg=br)
        mgr.setup()
        t_init, _ = timed(lambda: subprocess.run(
            [str(pg.bindir / "pgbench"), "-i", "-q", "-s", str(args.scale), "-h", "127.0.0.1", "-p", str(pg.port),
             "-U", "postgres", "postgres"], check=True, capture_output=True))
        pg.psql("checkpoint")
        db_bytes = int(pg.psql("select pg_database_size('postgres')"))
        wal_bytes = dir_size(pg.data / "pg_wal")
        expected = tuple(LocalCluster(pg.data, port=pg.port).query(CHECK_SQL)[0])
        print(f"pgbench -i -s {args.scale}: {t_init:.1f} s, database {db_bytes / 1e9:.2f} GB, "
              f"pg_wal {wal_bytes / 1e6:.0f} MB (not part of any restore)")

        # backups: pgBackRest full, pg_dump -Fc, raw copy of the stopped data dir (no pg_wal)
        t_bk, s = timed(lambda: mgr.backup("full"))
        dump_engine = PgDumpEngine(port=pg.port, jobs=args.jobs)
        dump_file = base / "dump" / "db.dump"
        dump_file.parent.mkdir()
        t_dump, _ = timed(lambda: dump_engine.dump(dump_file))
        pg.stop("fast")  # stays down: nothing competes with the restores
        copy = base / "raw-copy"
        t_copy, _ = timed(lambda: raw_backup(pg, copy))

        def restore_pgbackrest(i: int):
            target = base / f"pgbr-restore-{i}"
            t0 = time.monotonic()
            res = mgr.restore(s.id, RestoreTargets(pg_data=target), recovery=args.recovery)
            verify(res.postgres.query, expected)
            total = time.monotonic() - t0
            detail = {"restore": res.step("postgres.restore").duration_s,
                      "start_replay": res.step("postgres.start_replay").duration_s}
            return total, detail, lambda: (res.stop(), shutil.rmtree(target))

        def restore_dump(i: int):
            fresh = PostgresServer(base / f"dump-restore-{i}", fast=False)
            t0 = time.monotonic()
            fresh.init()
            fresh.start()
            t1 = time.monotonic()
            dump_engine.restore_file(dump_file, fresh.port, "restored", jobs=args.jobs)
            t2 = time.monotonic()
            verify(lambda q: LocalCluster(fresh.data, port=fresh.port).query(q, dbname="restored"), expected)
            total = time.monotonic() - t0
            return total, {"initdb_start": t1 - t0, "pg_restore": t2 - t1}, \
                lambda: (fresh.stop("immediate"), shutil.rmtree(fresh.base))

        def restore_raw(i: int):
            target = base / f"raw-restore-{i}"
            t0 = time.monotonic()
            subprocess.run(["cp", "-a", str(copy), str(target)], check=True)
            subprocess.run(["sync", "-f", str(target)], check=True)  # durable, like the others
            t1 = time.monotonic()
            c = LocalCluster(target)
            c.configure()
            c.start()
            c.wait_promoted()
            verify(c.query, expected)
            total = time.monotonic() - t0
            return total, {"copy_sync": t1 - t0}, lambda: (c.stop("immediate"), shutil.rmtree(target))

        methods = {"pgbackrest": restore_pgbackrest, "pg_dump": restore_dump, "raw_copy": restore_raw}
        runs: dict[str, list] = {k: [] for k in methods}
        warmup: dict[str, float] = {}
        for rnd in range(args.repeat + 1):  # round 0 is the discarded warm-up
            for name, fn in methods.items():
                settle()
                total, detail, cleanup = fn(rnd)
                cleanup()
                if rnd == 0:
                    warmup[name] = total
                else:
                    runs[name].append({"total": total, **detail})
                print(f"round {rnd}{' (warm-up)' if rnd == 0 else ''} {name}: {total:.2f} s", flush=True)

        med = {k: statistics.median(r["total"] for r in v) for k, v in runs.items()}
        stored = {"pgbackrest": s.part("postgres").meta["repo_size"], "pg_dump": dump_file.stat().st_size,
                  "raw_copy": dir_size(copy)}
        backup_s = {"pgbackrest": t_bk, "pg_dump": t_dump, "raw_copy": t_copy}
        labels = {"pgbackrest": f"pgBackRest (compress {br.compression}, restore process-max {args.restore_process_max}, "
                                f"recovery {args.recovery})",
                  "pg_dump": f"pg_dump+pg_restore -j{args.jobs}",
                  "raw_copy": "raw copy (cp -a + sync, no pg_wal)"}
        rows = []
        for name in methods:
            rs = runs[name]
            rows.append([labels[name], f"{backup_s[name]:.1f}", f"{stored[name] / 1e6:.0f}", f"{med[name]:.2f}",
                         f"{min(r['total'] for r in rs):.2f}–{max(r['total'] for r in rs):.2f}",
                         f"{med['pg_dump'] / med[name]:.1f}×", f"{med[name] / med['raw_copy']:.2f}×"])
        speedup, vs_raw = med["pg_dump"] / med["pgbackrest"], med["pgbackrest"] / med["raw_copy"]
        met = {"≥ 3× faster than pg_restore": speedup >= 3, "≤ 1.5× raw copy": vs_raw <= 1.5}
        goal_text = "; ".join(f"{k}: {'MET' if v else 'MISSED'}" for k, v in met.items())
        extra = {"scale": args.scale, "db_bytes": db_bytes, "pg_wal_bytes_excluded": wal_bytes, "repeat": args.repeat,
                 "settings": {"restore_process_max": args.restore_process_max, "bundle": br.bundles,
                              "recovery": args.recovery, "log_level_file": args.log_level_file,
                              "compress_type": br.compression,
                              "recovery_init_sync_method": "syncfs"},
                 "warmup_s": warmup, "runs": runs, "speedup_vs_pg_restore": speedup, "ratio_vs_raw_copy": vs_raw,
                 "goal_met": all(met.values()), "goals": met, "median_restore_to_verified_s": med}
        title = (f"Backup and restore-to-verified, pgbench -s {args.scale} ({db_bytes / 1e9:.2f} GB), median of "
                 f"{args.repeat} round-robin rounds after a discarded warm-up; raw copy = durable cp -a + sync of "
                 f"the same bytes (data dir without pg_wal); goals: {goal_text}")
        columns = ["method", "backup s", "stored MB", "restore→verified s", "range s", "× faster than pg_restore",
                   "÷ raw copy"]
        publish("backup", title, columns, rows, extra, write=not args.no_write)
        print(f"goal: ≥ 3× faster than pg_restore -j{args.jobs}: {speedup:.1f}× "
              f"{'MET' if speedup >= 3 else 'MISSED'}; ≤ 1.5× raw copy: {vs_raw:.2f}× "
              f"{'MET' if vs_raw <= 1.5 else 'MISSED'}")
    finally:
        if pg is not None:
            pg.stop("immediate")
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
