"""Backup and restore-to-verified time on a ≥ 1 GB database: pgBackRest vs pg_dump/pg_restore -j2 vs raw copy.

Run: ``.venv/bin/python bench/bench_backup.py [--scale 70] [--repeat 3]``

One PostgreSQL 15 (fsync on, as production would be) is filled with ``pgbench -i -s SCALE``
(scale 70 ≈ 1.1 GB) while archiving WAL to a local pgBackRest repository (lz4, process-max 2).
Then, for each method:

* pgBackRest — ``BackupManager.backup("full")``; restore = ``BackupManager.restore`` into a new
  directory (pgbackrest restore, start, replay until promoted);
* pg_dump    — ``pg_dump -Fc``; restore = initdb + start a fresh server + ``pg_restore -j2``;
* raw copy   — the physical limit: ``cp -a`` of the cleanly stopped data directory; restore =
  ``cp -a`` into a new directory + start; "+ sync" also flushes the copy to disk, as pgBackRest
  and a fsync-on pg_restore do before they report success.

"Verified" = the restored server answers and its row counts and ``sum(abalance)`` equal the
source's. Restores repeat ``--repeat`` times after a ``sync`` (so one run's writeback is not
billed to the next) and the median counts. Goal: pgBackRest
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

CHECK_SQL = ("select (select count(*) from pgbench_accounts), (select count(*) from pgbench_branches), "
             "(select count(*) from pgbench_tellers), (select sum(abalance) from pgbench_accounts)")


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=70)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    chown_to_pg_user(base)
    servers: list = []
    try:
        repo = LocalRepository(base / "repo")
        repo.init()
        pg = PostgresServer(base / "src", fast=False)
        br = PgBackRest(repo=repo, workdir=base / "pgbr", pg_data=pg.data, pg_port=pg.port, pg_socket_dir=pg.base,
                        process_max=2)
        pg.settings = br.archive_settings() | {"max_wal_size": "'2GB'"}
        pg.init()
        pg.start()
        servers.append(pg)
        mgr = BackupManager(repo, pg=br)
        mgr.setup()
        t_init, _ = timed(lambda: subprocess.run(
            [str(pg.bindir / "pgbench"), "-i", "-q", "-s", str(args.scale), "-h", "127.0.0.1", "-p", str(pg.port),
             "-U", "postgres", "postgres"], check=True, capture_output=True))
        pg.psql("checkpoint")
        db_bytes = int(pg.psql("select pg_database_size('postgres')"))
        expected = tuple(LocalCluster(pg.data, port=pg.port).query(CHECK_SQL)[0])
        print(f"pgbench -i -s {args.scale}: {t_init:.1f} s, database {db_bytes / 1e9:.2f} GB")

        rows, extra = [], {"scale": args.scale, "db_bytes": db_bytes, "repeat": args.repeat, "runs": {}}

        # pgBackRest
        t_bk, s = timed(lambda: mgr.backup("full"))
        runs = []
        for i in range(args.repeat):
            target = base / f"pgbr-restore-{i}"
            settle()
            t_total, res = timed(lambda t=target: (lambda r: (verify(r.postgres.query, expected), r)[1])(
                mgr.restore(s.id, RestoreTargets(pg_data=t))))
            runs.append({"total": t_total, "restore": res.step("postgres.restore").duration_s,
                         "start_replay": res.step("postgres.start_replay").duration_s})
            res.stop()
            shutil.rmtree(target)
        extra["runs"]["pgbackrest"] = runs
        pgbr = (t_bk, s.part("postgres").meta["repo_size"], runs)

        # pg_dump / pg_restore -jN into a fresh server
        dump_engine = PgDumpEngine(port=pg.port, jobs=args.jobs)
        dump_file = base / "dump" / "db.dump"
        dump_file.parent.mkdir()
        t_dump, _ = timed(lambda: dump_engine.dump(dump_file))
        runs = []
        for i in range(args.repeat):
            fresh = PostgresServer(base / f"dump-restore-{i}", fast=False)
            settle()

            def restore_dump(fresh=fresh):
                t0 = time.monotonic()
                fresh.init()
                fresh.start()
                t1 = time.monotonic()
                dump_engine.restore_file(dump_file, fresh.port, "restored", jobs=args.jobs)
                t2 = time.monotonic()
                verify(lambda q: LocalCluster(fresh.data, port=fresh.port).query(q, dbname="restored"), expected)
                return t1 - t0, t2 - t1

            t_total, (t_boot, t_restore) = timed(restore_dump)
            runs.append({"total": t_total, "initdb_start": t_boot, "pg_restore": t_restore})
            fresh.stop("immediate")
            shutil.rmtree(fresh.base)
        extra["runs"]["pg_dump"] = runs
        dump = (t_dump, dump_file.stat().st_size, runs)

        # raw copy of the cleanly stopped data directory
        pg.stop("fast")
        copy = base / "raw-copy"
        t_copy, _ = timed(lambda: subprocess.run(["cp", "-a", str(pg.data), str(copy)], check=True))
        pg.start()
        raws: dict[str, list] = {"raw_copy": [], "raw_copy_sync": []}
        for i in range(args.repeat):
            for variant, durable in (("raw_copy", False), ("raw_copy_sync", True)):
                target = base / f"raw-restore-{i}-{variant}"

                def restore_raw(target=target, durable=durable):
                    t0 = time.monotonic()
                    subprocess.run(["cp", "-a", str(copy), str(target)], check=True)
                    if durable:  # pgBackRest and pg_restore (fsync on) leave a durable copy; cp alone does not
                        subprocess.run(["sync", "-f", str(target)], check=True)
                    t1 = time.monotonic()
                    c = LocalCluster(target)
                    c.configure()
                    c.start()
                    c.wait_promoted()
                    verify(c.query, expected)
                    return c, t1 - t0

                settle()
                t_total, (c, t_cp) = timed(restore_raw)
                raws[variant].append({"total": t_total, "copy": t_cp})
                c.stop("immediate")
                shutil.rmtree(target)
        extra["runs"] |= raws
        raw = (t_copy, dir_size(copy), raws["raw_copy"])
        raw_sync = (t_copy, dir_size(copy), raws["raw_copy_sync"])

        med = {k: statistics.median(r["total"] for r in v[2]) for k, v in
               {"pgbackrest": pgbr, "pg_dump": dump, "raw_copy": raw, "raw_copy_sync": raw_sync}.items()}
        for name, label, (t_b, size, rs) in (("pgbackrest", "pgBackRest", pgbr),
                                              ("pg_dump", f"pg_dump+pg_restore -j{args.jobs}", dump),
                                              ("raw_copy", "raw copy (cp -a)", raw),
                                              ("raw_copy_sync", "raw copy + sync", raw_sync)):
            rows.append([label, f"{t_b:.1f}", f"{size / 1e6:.0f}", f"{med[name]:.2f}",
                         f"{min(r['total'] for r in rs):.2f}–{max(r['total'] for r in rs):.2f}",
                         f"{med['pg_dump'] / med[name]:.1f}×", f"{med[name] / med['raw_copy']:.2f}×"])
        speedup, vs_raw = med["pg_dump"] / med["pgbackrest"], med["pgbackrest"] / med["raw_copy"]
        vs_raw_sync = med["pgbackrest"] / med["raw_copy_sync"]
        extra |= {"speedup_vs_pg_restore": speedup, "ratio_vs_raw_copy": vs_raw, "ratio_vs_raw_copy_sync": vs_raw_sync,
                  "goal_met": speedup >= 3 and vs_raw <= 1.5, "median_restore_to_verified_s": med}
        publish("backup", f"Backup and restore-to-verified, pgbench -s {args.scale} ({db_bytes / 1e9:.2f} GB), "
                f"median of {args.repeat}",
                ["method", "backup s", "stored MB", "restore→verified s", "range s",
                 "× faster than pg_restore", "÷ raw copy"], rows, extra)
        print(f"goal: ≥ 3× faster than pg_restore -j{args.jobs}: {speedup:.1f}× "
              f"{'MET' if speedup >= 3 else 'MISSED'}; ≤ 1.5× raw copy: {vs_raw:.2f}× "
              f"{'MET' if vs_raw <= 1.5 else 'MISSED'} (vs raw copy + sync: {vs_raw_sync:.2f}×)")
    finally:
        for srv in servers:
            srv.stop("immediate")
        subprocess.run(["rm", "-rf", str(base)], check=False, **({} if not run_as_pg_user() else {}))


if __name__ == "__main__":
    main()
