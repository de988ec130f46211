"""Integrity checks: a flipped byte anywhere in a repository must be found.

Layers, cheapest first:
  1. the catalog's embedded SHA-256;
  2. every object a set owns: SHA-256 recomputed from the repository;
  3. deep: each file inside file/config archives against its manifest entry;
  4. pgBackRest: `pgbackrest verify` (it can exit 0 while logging errors, so its log lines
     decide), every `*.copy` info/manifest equal to its original (verify reads only one),
     and WAL continuity from the oldest catalogued backup to the archive's newest segment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from resilience.backup.catalog import CATALOG_KEY, BackupSet, Catalog
from resilience.backup.engines.files import FileTreeEngine
from resilience.backup.engines.pgbackrest import PgBackRest
from resilience.backup.errors import BackupError, RepositoryError, VerifyFailed
from resilience.backup.repository import PGBACKREST_DIR, Repository

SEGMENTS_PER_LOG = 0x100  # 16 MiB segments


@dataclass
class VerifyReport:
    """Outcome of one verification; `ok` only when every layer ran and found nothing."""

    sets: list[str] = field(default_factory=list)
    objects_checked: int = 0
    files_checked: int = 0
    wal_segments_checked: int = 0
    pgbackrest_verified: bool = False
    problems: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> VerifyReport:
        if self.problems:
            more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise VerifyFailed(f"verification failed: {self.problems[0]}{more}", self.problems)
        return self


def segno(name: str) -> tuple[int, int]:
    """(timeline, segment number) of a WAL file name."""
    return int(name[:8], 16), int(name[8:16], 16) * SEGMENTS_PER_LOG + int(name[16:24], 16)


def wal_gaps(segments: list[str], start: str | None = None) -> list[str]:
    """Missing ranges per timeline, from `start` (or each timeline's first) to its newest segment."""
    by_tli: dict[int, list[int]] = {}
    for s in segments:
        tli, n = segno(s)
        by_tli.setdefault(tli, []).append(n)
    gaps = []
    for tli, nums in sorted(by_tli.items()):
        nums = sorted(set(nums))
        lo = nums[0]
        if start is not None and segno(start)[0] == tli:
            lo = segno(start)[1]
            if lo not in nums:
                gaps.append(f"WAL timeline {tli}: first needed segment {start} is missing")
        present = [n for n in nums if n >= lo]
        for a, b in zip(present, present[1:], strict=False):
            if b != a + 1:
                gaps.append(f"WAL timeline {tli}: {b - a - 1} segment(s) missing after "
                            f"{tli:08X}{a // SEGMENTS_PER_LOG:08X}{a % SEGMENTS_PER_LOG:08X}")
    return gaps


def _check_objects(repo: Repository, s: BackupSet, report: VerifyReport, deep: bool) -> None:
    for part in s.parts:
        for obj in part.objects:
            report.objects_checked += 1
            try:
                if repo.sha256(obj.key) != obj.sha256:
                    report.problems.append(f"set {s.id} part {part.name}: {obj.key}: SHA-256 mismatch")
            except RepositoryError as exc:
                report.problems.append(f"set {s.id} part {part.name}: {exc}")
        if deep and part.kind in ("files", "config"):
            problems = FileTreeEngine.verify(repo, part)
            report.files_checked += part.meta.get("changed", 0)
            report.problems += [f"set {s.id}: {p}" for p in problems]


def _check_copies(repo: Repository, report: VerifyReport) -> None:
    """pgBackRest writes X and X.copy identically but `verify` reads only one of them."""
    for key in repo.list(PGBACKREST_DIR):
        if key.endswith(".copy"):
            orig = key[: -len(".copy")]
            report.objects_checked += 2
            try:
                if repo.get_bytes(orig) != repo.get_bytes(key):
                    report.problems.append(f"pgbackrest: {orig} differs from its .copy")
            except RepositoryError as exc:
                report.problems.append(f"pgbackrest: {exc}")


def _check_pgbackrest(br: PgBackRest, sets: list[BackupSet], report: VerifyReport) -> None:
    labels = [p.meta["label"] for s in sets for p in s.parts if p.engine == "pgbackrest"]
    if not labels:
        return
    try:
        info = br.info()
        known = {b.label: b for b in info.backups}
        for label in labels:
            if label not in known:
                report.problems.append(f"pgbackrest: backup {label} is missing from the repository")
            elif known[label].error:
                report.problems.append(f"pgbackrest: backup {label} is flagged with errors")
        report.problems += [f"pgbackrest verify: {p}" for p in br.verify()]
        report.pgbackrest_verified = True
        starts = sorted(p.meta["wal_start"] for s in sets for p in s.parts if p.engine == "pgbackrest")
        for archive_id, segs in br.archived_segments().items():
            report.wal_segments_checked += len(segs)
            report.problems += [f"pgbackrest {archive_id}: {g}" for g in wal_gaps(segs, starts[0] if starts else None)]
        for s in sets:
            for p in s.parts:
                if p.engine == "pgbackrest":
                    _check_range(p.meta["wal_start"], p.meta["wal_stop"], br, s, report)
    except BackupError as exc:
        report.problems.append(f"pgbackrest: {exc}")


def _check_range(first: str, last: str, br: PgBackRest, s: BackupSet, report: VerifyReport) -> None:
    have = {seg for segs in br.archived_segments().values() for seg in segs}
    tli, a = segno(first)
    _, b = segno(last)
    for n in range(a, b + 1):
        name = f"{tli:08X}{n // SEGMENTS_PER_LOG:08X}{n % SEGMENTS_PER_LOG:08X}"
        if name not in have:
            report.problems.append(f"set {s.id}: WAL {name} needed for consistency is missing")


def verify_repository(repo: Repository, *, pgbackrest: PgBackRest | None = None, set_id: str | None = None,
                      deep: bool = True) -> VerifyReport:
    """Verify one set and the chain it needs (set_id) or every set (None); never raises for damage."""
    t0 = time.monotonic()
    report = VerifyReport()
    try:
        repo.check()
        catalog = Catalog.loads(repo.get_bytes(CATALOG_KEY), f"{repo.describe()}: {CATALOG_KEY}")
        sets = catalog.list() if set_id is None else catalog.chain(catalog.get(set_id).id)
    except BackupError as exc:
        report.problems.append(str(exc))
        report.duration_s = time.monotonic() - t0
        return report
    report.sets = [s.id for s in sets]
    for s in sets:
        _check_objects(repo, s, report, deep)
    if pgbackrest is not None:
        _check_copies(repo, report)
        _check_pgbackrest(pgbackrest, sets, report)
    report.duration_s = time.monotonic() - t0
    return report
