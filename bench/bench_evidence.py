"""`chaosdrill evidence` over a 10,000-run results directory: wall time and peak memory (goal ≤ 10 s, ≤ 500 MB RSS).

Run: ``.venv/bin/python bench/bench_evidence.py [--runs 10000] [--quick]``

The history is generated once per size (cached under $TMPDIR, ~10 min for 10,000 runs on 2 cores)
through the real result writer (harness.results.write_run): fault runs of four scenarios measured
and judged from synthetic 12 s probe timelines, DR drills and failovers with backup sets, checks
and RTO steps, about 5 % failures; each run has a report.html of a real report's size. The runs
are spread over four quarters; the measured pack is the newest quarter's (≈ 2,500 runs copied,
hashed and rendered), with the other 7,500 read for coverage, the previous period and the trend.

Measured as the user runs it: `chaosdrill evidence --period … --no-pdf` in a fresh process
(`/usr/bin/time`-style: wall clock and the child's peak RSS), twice: once without the history
index cache (first run) and once with it. The PDF print is timed separately (headless Chromium).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._table import publish  # noqa: E402

GOAL_S, GOAL_MB = 10.0, 500
SCENARIOS = ("db_outage", "db_outage", "db_outage", "cache_outage", "network_latency", "network_partition",
             "dr_restore", "replica_failover")


def generate(root: Path, n: int, start: datetime, days: float) -> None:
    from harness.config import Targets
    from tests.helpers.gen_runs import drill_run, fault_run

    rnd = random.Random(10)
    report = b"<!doctype html>" + b"x" * 38_000  # a real run report is 32-40 kB
    strict = Targets(mttr=2.5)
    for i in range(n):
        when = start + timedelta(seconds=days * 86400 * i / n + rnd.random() * 60)
        scen = SCENARIOS[i % len(SCENARIOS)]
        if scen in ("dr_restore", "replica_failover"):
            status = "failed" if rnd.random() < 0.02 else "completed"
            d = drill_run(root, when, scenario=scen, rto_s=rnd.uniform(2, 9), rpo_s=rnd.uniform(0.05, 2), status=status,
                          seed=i)
        else:
            d = fault_run(root, scen, when, outage_s=rnd.choice((1.0, 1.5, 2.0, 2.6)), seed=i,
                          targets=strict if rnd.random() < 0.1 else None, samples=120)
        (d / "report.html").write_bytes(report)
        if i % 1000 == 0:
            print(f"  generated {i}/{n}", flush=True)


def run_cli(args: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB of the child, exit code) of one chaosdrill process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness.cli_main", *args], capture_output=True, text=True,
                          cwd=ROOT, env=os.environ | {"COLUMNS": "200"})
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
    return wall, max(peak, before) / 1024, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="1,000 runs; results are not written")
    args = ap.parse_args()
    n = 1000 if args.quick else args.runs
    cache = Path(tempfile.gettempdir()) / f"chaosdrill-bench-evidence-{n}"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    if not (cache / ".complete").exists():
        shutil.rmtree(cache, ignore_errors=True)
        print(f"generating {n} runs in {cache} (once)", flush=True)
        t = time.perf_counter()
        generate(cache / "results", n, start, days=365)
        (cache / ".complete").write_text(f"{time.perf_counter() - t:.0f} s\n")
    results = cache / "results"
    count = sum(1 for _ in results.iterdir() if _.is_dir())
    rows = []
    for label, drop_index in (("first build (no index cache)", True), ("again (index cache)", False)):
        if drop_index:
            (results / ".chaosdrill-index.json").unlink(missing_ok=True)
        out = Path(tempfile.mkdtemp(prefix="chaosdrill-bench-pack-")) / "pack"
        wall, rss, code = run_cli(["evidence", "--period", "2026-Q4", "--results", str(results), "--out", str(out),
                                   "--no-pdf"])
        packed = len(list((out / "runs").glob("*.result.json")))
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        rows.append([label, count, packed, f"{wall:.1f} s", f"{rss:.0f} MB", f"{size:.0f} MB",
                     "yes" if code == 0 and wall <= GOAL_S and rss <= GOAL_MB else "NO"])
        shutil.rmtree(out.parent, ignore_errors=True)
    chromium = shutil.which("chromium")
    if chromium:
        out = Path(tempfile.mkdtemp(prefix="chaosdrill-bench-pack-")) / "pack"
        wall, rss, code = run_cli(["evidence", "--period", "2026-Q4", "--results", str(results), "--out", str(out)])
        rows.append(["with evidence.pdf (headless Chromium)", count, len(list((out / "runs").glob("*.result.json"))),
                     f"{wall:.1f} s", f"{rss:.0f} MB (chaosdrill only)",
                     f"{sum(p.stat().st_size for p in out.rglob('*') if p.is_file()) / 1e6:.0f} MB",
                     "(PDF not in the goal)" if code == 0 else "FAILED"])
        shutil.rmtree(out.parent, ignore_errors=True)
    publish("evidence", f"chaosdrill evidence --period 2026-Q4 over {count} runs (goal ≤ {GOAL_S:.0f} s, ≤ {GOAL_MB} MB RSS)",
            ["build", "runs in results", "runs in the pack", "wall", "peak RSS", "pack size", "within goal"], rows,
            {"runs": count, "goal_s": GOAL_S, "goal_mb": GOAL_MB}, write=not args.quick)
    return 0 if all(r[-1] != "NO" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
