"""The drill's own data and its disaster: what a DR drill puts into the source and then destroys.

    seed_orders / count_orders    orders through the reference app; rows committed before a backup
    app_files / new_upload        the app's uploads dir and config file (backed up as file trees)
    orders_snapshot               per-row hashes of `orders` (ORDERS_HASHES) just before the disaster
    destroy_source                the disaster: pg_ctl stop -m immediate, Redis SIGKILL, detection delay,
                                  the crashed primary's WAL pushed (optional), data dirs moved aside
    CANARY_SUMMARY                what the canary left in the restored database (max seq, rows, newest)

The canary itself is `harness.canary.CanaryWriter`; the runner (drill.py) starts it, marks the
disaster on it and checks what of it was restored.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from harness.canary import CanaryWriter
from harness.config import Config
from harness.drill.pipeline import connect, one_line
from harness.env.local import LocalEnvironment
from harness.errors import HarnessError
from harness.measure import DRILL_DECLARED, DRILL_DISASTER
from harness.timeline import Timeline
from resilience.errors import BackupError

UPLOADS_PART = "files:uploads"
APP_CACHE_KEYS = "order:*"  # the reference app's cache entries (harness/app/server.py)
ORDERS_HASHES = ("SELECT id, md5(ROW(id, customer, item, quantity, amount, created_at)::text) "
                 "FROM orders ORDER BY id")
CANARY_SUMMARY = ("SELECT max(seq), count(*), min(seq), "
                  "(SELECT written_at FROM canary ORDER BY seq DESC LIMIT 1) FROM canary")


def seed_orders(app_url: str, n: int) -> None:
    """A few orders through the app, so `orders` exists and has rows even without load."""
    with httpx.Client(base_url=app_url, timeout=5) as client:
        for i in range(n):
            r = client.post("/orders", json={"customer": f"seed-{i}", "item": "widget", "quantity": 1 + i % 5,
                                             "amount": 9.99 + i})
            if r.status_code != 201:
                raise HarnessError(f"seeding orders through the app failed: HTTP {r.status_code}")


def count_orders(port: int) -> int:
    with connect(port) as conn:
        return conn.execute("SELECT count(*) FROM orders").fetchone()[0]


def app_files(source: LocalEnvironment, cfg: Config) -> tuple[Path, Path]:
    """The source's file data and configuration, as a drill backs them up.

    The reference app keeps no files and takes its settings on the command line, so the drill
    gives it what a real service has: an uploads dir (receipts per seeded order, one binary blob,
    a new batch before every backup) and its configuration file (`config/app.json`: the app's
    settings and the endpoints it was started with).
    """
    uploads = source.base / "uploads"
    (uploads / "receipts").mkdir(parents=True, exist_ok=True)
    for i in range(1, 21):
        (uploads / "receipts" / f"order-{i:04d}.txt").write_text(f"receipt for order {i}: widget x {1 + i % 5}\n")
    (uploads / "logo.bin").write_bytes(os.urandom(256 * 1024))
    conf = source.base / "config" / "app.json"
    conf.parent.mkdir(parents=True, exist_ok=True)
    app = source.app
    conf.write_text(json.dumps({"settings": cfg.environment.local.app.model_dump(mode="json"),
                                "pg_dsn": app.pg_dsn if app else None, "redis_url": app.redis_url if app else None},
                               indent=1, sort_keys=True) + "\n")
    return uploads, conf


def new_upload(uploads: Path, name: str) -> None:
    (uploads / name).write_bytes(os.urandom(64 * 1024))


def orders_snapshot(port: int) -> tuple[dict[int, str], str]:
    """Per-row hashes of `orders` ({id: md5}) and one SHA-256 over them."""
    with connect(port) as conn:
        snapshot = dict(conn.execute(ORDERS_HASHES).fetchall())
    return snapshot, hashlib.sha256("".join(f"{k}:{v};" for k, v in snapshot.items()).encode()).hexdigest()


def destroy_source(tl: Timeline, src: LocalEnvironment, canary: CanaryWriter, t_kill: int, *, pg: Any,
                   push_wal: bool, delay: float, pushed: list[str]) -> None:
    """The disaster on the source (its canary already marked it): PostgreSQL stopped -m immediate,
    Redis killed, the declaration after `delay`, the crashed primary's WAL pushed by `pg` (pgBackRest)
    when `push_wal` (the segments added to `pushed`), then its data, Redis, uploads and config dirs gone."""
    src.postgres.stop("immediate")
    tl.event(DRILL_DISASTER, "drill", kill_started_ns=t_kill, what="pg_ctl stop -m immediate; Redis SIGKILL")
    src.redis.kill()
    if delay:
        time.sleep(delay)
    tl.event(DRILL_DECLARED, "drill", detection_delay_s=delay)
    if push_wal:  # RPO lever: the crashed primary's disk is still readable (docs/recipes.md §4)
        tl.event("drill.push_wal.start", "drill")
        try:
            pushed.extend(pg.push_wal(src.postgres.data))
        except BackupError as exc:
            tl.event("drill.push_wal.error", "drill", error=one_line(exc))
        tl.event("drill.push_wal.end", "drill", segments=pushed)
    # Destroyed = gone from where anything could use it. The files are moved aside in one rename
    # and deleted at teardown, so deleting them does not compete with the restore being timed.
    graveyard = src.base / "destroyed"
    graveyard.mkdir(exist_ok=True)
    for doomed in (src.postgres.data, src.redis.base, src.base / "uploads", src.base / "config"):
        if doomed.exists():
            doomed.rename(graveyard / f"{doomed.parent.name}-{doomed.name}")
    canary.stop()
    tl.event("drill.source_destroyed", "drill", pg_data=str(src.postgres.data), redis_dir=str(src.redis.base),
             files=[str(src.base / "uploads"), str(src.base / "config")])
