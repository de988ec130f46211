"""Retention: keep the newest N full sets; older fulls expire with every set that depends on them.

pgBackRest's own retention is disabled in its config (so nothing disappears behind the
catalog's back); expiry here runs `pgbackrest expire --set` for each expired full and then
lets pgBackRest prune WAL no longer needed by the fulls that remain.
"""

from __future__ import annotations

from resilience.backup.catalog import CATALOG_KEY, BackupSet, BackupType, Catalog
from resilience.backup.engines.pgbackrest import PgBackRest
from resilience.backup.errors import BackupError
from resilience.backup.repository import Repository


def expire_sets(repo: Repository, keep_full: int, *, pgbackrest: PgBackRest | None = None) -> list[BackupSet]:
    """Drop what retention allows and return the dropped sets (oldest first)."""
    repo.check()
    catalog = Catalog.loads(repo.get_bytes(CATALOG_KEY), f"{repo.describe()}: {CATALOG_KEY}")
    doomed = catalog.expired_by(keep_full)
    pg_parts = [p for s in doomed for p in s.parts if p.engine == "pgbackrest"]
    if pg_parts and pgbackrest is None:
        raise BackupError(f"{len(pg_parts)} expiring set(s) hold pgBackRest backups: pass the PgBackRest engine")
    if pgbackrest is not None and pg_parts:
        existing = {b.label for b in pgbackrest.info().backups}
        for s in doomed:
            for p in s.parts:
                if p.engine == "pgbackrest" and s.type is BackupType.FULL and p.meta["label"] in existing:
                    pgbackrest.expire(label=p.meta["label"])  # its diff/incr go with it
        pgbackrest.expire(keep_full=keep_full)  # prune the WAL only the expired fulls needed
    for s in reversed(doomed):  # children first, so the catalog never points at a missing parent
        for p in s.parts:
            if p.engine != "pgbackrest":
                for o in p.objects:
                    repo.delete(o.key)
        catalog.remove(s.id)
    repo.put_bytes(CATALOG_KEY, catalog.dumps())
    return doomed
