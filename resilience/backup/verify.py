"""Integrity checks: the one verification path every caller uses; a damaged set is never "intact".

Every reader of a set goes through `verify_repository`: `chaosdrill verify`, `drill --backup-id`,
the drill's preflight, `BackupManager.restore(verify=True)`. It covers every file a restore of the
set reads, cheapest layer first:
  1. the catalog: present, and its embedded SHA-256 matches;
  2. every object each set of the chain owns (Redis RDB, file/config archives and their manifests,
     pgBackRest's backup.manifest and its .copy, the archived .backup label): SHA-256 recomputed;
  3. deep: each file inside file/config archives against its manifest entry;
  4. pgBackRest, per stanza the chain was taken in: `pgbackrest verify` (it can exit 0 while
     logging errors, so its log lines decide: data files of every backup, WAL checksums, the info
     files), every `*.info`/`*.manifest` equal to its `.copy` (verify reads only one of them), each
     backup listed and not flagged, and WAL continuity: every segment from the oldest backup's start
     to the archive's newest segment, and each backup's own start..stop range.

Without a `pgbackrest` engine the caller's repository is opened through a repository-only engine in
a temp dir, so no caller can skip layer 4 by accident: a set with a PostgreSQL part whose WAL and
data could not be checked (pgbackrest missing) is a problem, not a pass.
Damage is reported, never raised: a missing object, catalog or stanza is a problem line naming it.
One limit no checker can lift: deleting the newest archived WAL segment(s) looks exactly like
archiving having stopped there; a restore then replays less, which its RPO shows.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from resilience.backup.catalog import CATALOG_KEY, BackupSet, Catalog
from resilience.backup.engines.files import FileTreeEngine
from resilience.backup.engines.pgbackrest import PgBackRest
from resilience.backup.errors import BackupError, RepositoryMissing, VerifyFailed
from resilience.backup.repository import PGBACKREST_DIR, Repository
from resilience.backup.runner import chown_pg

SEGMENTS_PER_LOG = 0x100  # 16 MiB segments
DEFAULT_STANZA = "drill"  # parts catalogued before the stanza was recorded in their meta


@dataclass
class VerifyReport:
    """Outcome of one verification; `ok` only when every layer ran and found nothing."""

    sets: list[str] = field(default_factory=list)
    objects_checked: int = 0
    files_checked: int = 0
    wal_segments_checked: int = 0
    pgbackrest_verified: bool = False
    stanzas: list[str] = field(default_factory=list)
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

    def to_dict(self) -> dict:
        return {"ok": self.ok, "sets": self.sets, "stanzas": self.stanzas, "objects_checked": self.objects_checked,
                "files_checked": self.files_checked, "wal_segments_checked": self.wal_segments_checked,
                "pgbackrest_verified": self.pgbackrest_verified, "problems": self.problems,
                "duration_s": round(self.duration_s, 3)}


def segno(name: str) -> tuple[int, int]:
    """(timeline, segment number) of a WAL file name."""
    return int(name[:8], 16), int(name[8:16], 16) * SEGMENTS_PER_LOG + int(name[16:24], 16)


def segname(tli: int, n: int) -> str:
    return f"{tli:08X}{n // SEGMENTS_PER_LOG:08X}{n % SEGMENTS_PER_LOG:08X}"


def _missing(tli: int, a: int, b: int) -> str:
    """Segments a+1 .. b-1 by name (the first and the last when there are many)."""
    count = b - a - 1
    if count == 1:
        return f"WAL segment {segname(tli, a + 1)} is missing"
    return f"WAL segments {segname(tli, a + 1)} … {segname(tli, b - 1)} ({count}) are missing"


def wal_gaps(segments: list[str], start: str | None = None) -> list[str]:
    """Missing segments per timeline, from `start` (or each timeline's first) to its newest segment."""
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
                gaps.append(f"WAL timeline {tli}: {_missing(tli, a, b)}")
    return gaps


def load_catalog(repo: Repository) -> Catalog:
    """The repository's catalog; a missing one says so (never "unknown backup set")."""
    repo.check()
    if not repo.exists(CATALOG_KEY):
        held = len(repo.list())
        what = f"it holds {held} other object(s): deleted or never written" if held else "the repository is empty"
        raise RepositoryMissing(f"{repo.describe()}: the backup catalog {CATALOG_KEY} is missing ({what})")
    return Catalog.loads(repo.get_bytes(CATALOG_KEY), f"{repo.describe()}: {CATALOG_KEY}")


def _check_objects(repo: Repository, s: BackupSet, report: VerifyReport, deep: bool) -> None:
    for part in s.parts:
        for obj in part.objects:
            report.objects_checked += 1
            try:
                if repo.sha256(obj.key) != obj.sha256:
                    report.problems.append(f"set {s.id} part {part.name}: {obj.key}: SHA-256 mismatch")
            except BackupError as exc:
                report.problems.append(f"set {s.id} part {part.name}: {exc}")
        if deep and part.kind in ("files", "config"):
            try:
                problems = FileTreeEngine.verify(repo, part)
            except BackupError as exc:
                problems = [str(exc)]
            report.files_checked += part.meta.get("changed", 0)
            report.problems += [f"set {s.id}: {p}" for p in problems]


def _check_copies(repo: Repository, stanza: str, report: VerifyReport, compare: bool = True) -> None:
    """pgBackRest writes X and X.copy identically but `verify` reads only one of them; either may be gone.
    `compare=False` for an encrypted repository: each copy is encrypted with its own salt, so only
    their presence is checked here (pgbackrest verify checks their contents)."""
    keys = set()
    for where in (f"{PGBACKREST_DIR}/backup/{stanza}/", f"{PGBACKREST_DIR}/archive/{stanza}/"):
        try:
            keys |= set(repo.list(where))
        except BackupError as exc:
            report.problems.append(f"pgbackrest stanza {stanza}: {exc}")
    for key in sorted(keys):
        if "/backup.history/" in key or not key.endswith((".info", ".manifest", ".info.copy", ".manifest.copy")):
            continue
        orig, copy = (key[: -len(".copy")], key) if key.endswith(".copy") else (key, key + ".copy")
        if key == copy and orig in keys:
            continue  # the pair is checked once, from the original
        partner = copy if key == orig else orig
        if partner not in keys:
            report.problems.append(f"pgbackrest: {partner} is missing (its twin {key} is present)")
            continue
        report.objects_checked += 2
        if not compare:
            continue
        try:
            if repo.get_bytes(orig) != repo.get_bytes(copy):
                report.problems.append(f"pgbackrest: {orig} and {copy} differ (one of them is damaged)")
        except BackupError as exc:
            report.problems.append(f"pgbackrest: {exc}")


def _pg_parts(sets: list[BackupSet]):
    return [(s, p) for s in sets for p in s.parts if p.engine == "pgbackrest"]


def _check_pgbackrest(br: PgBackRest, sets: list[BackupSet], report: VerifyReport) -> None:
    _check_stanza(br, [(f"set {s.id}", p.meta) for s, p in _pg_parts(sets)], report)


def _check_stanza(br: PgBackRest, parts: list[tuple[str, dict]], report: VerifyReport) -> None:
    """Layer 4 for one stanza: info files, the backups `parts` name (owner, meta with label and WAL
    range) listed and unflagged, `pgbackrest verify`, WAL continuity and each backup's own range."""
    where = f"pgbackrest stanza {br.stanza}"
    for name in ("backup.info", "archive.info"):  # neither the info files nor their copies may be gone
        kind = name.split(".")[0]
        for key in (f"{PGBACKREST_DIR}/{kind}/{br.stanza}/{name}", f"{PGBACKREST_DIR}/{kind}/{br.stanza}/{name}.copy"):
            try:
                if not br.repo.exists(key):
                    report.problems.append(f"{where}: {key} is missing")
            except BackupError as exc:
                report.problems.append(f"{where}: {exc}")
    try:
        info = br.info()
    except BackupError as exc:
        report.problems.append(f"{where}: {exc}")
        info = None
    if info is not None:
        known = {b.label: b for b in info.backups}
        for owner, meta in parts:
            label = meta["label"]
            if label not in known:
                report.problems.append(f"{owner}: pgbackrest backup {label} is missing from {where}")
            elif known[label].error:
                report.problems.append(f"{owner}: pgbackrest backup {label} is flagged with errors")
    try:
        report.problems += [f"pgbackrest verify ({br.stanza}): {p}" for p in br.verify()]
        report.pgbackrest_verified = True
    except BackupError as exc:
        report.problems.append(f"{where}: verify: {exc}")
    try:
        archived = br.archived_segments()
    except BackupError as exc:
        report.problems.append(f"{where}: WAL archive unreadable: {exc}")
        return
    have = {seg for segs in archived.values() for seg in segs}
    if not have and parts:
        report.problems.append(f"{where}: the WAL archive holds no segment")
    starts = sorted(meta["wal_start"] for _, meta in parts)
    for archive_id, segs in archived.items():
        report.wal_segments_checked += len(segs)
        report.problems += [f"{where} archive {archive_id}: {g}" for g in wal_gaps(segs, starts[0] if starts else None)]
    for owner, meta in parts:
        tli, a = segno(meta["wal_start"])
        _, b = segno(meta["wal_stop"])
        for n in range(a, b + 1):
            if segname(tli, n) not in have:
                report.problems.append(f"{owner}: WAL segment {segname(tli, n)} needed for consistency is missing")


@contextmanager
def _engine(repo: Repository, given: PgBackRest | None, workdir: Path | None) -> Iterator[PgBackRest]:
    """The caller's engine, or a repository-only one (no cluster: verify, info and repo-ls need none)."""
    if given is not None:
        yield given
        return
    tmp = Path(tempfile.mkdtemp(prefix="chaosdrill-verify-", dir=workdir))
    chown_pg(tmp)  # pgBackRest runs as the postgres OS user when we are root
    try:
        br = PgBackRest(repo=repo, workdir=tmp / "pgbackrest", pg_data=tmp / "no-cluster", pg_port=5432,
                        stanza=DEFAULT_STANZA)
        br.write_config()
        yield br
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify_repository(repo: Repository, *, pgbackrest: PgBackRest | None = None, set_id: str | None = None,
                      deep: bool = True, workdir: Path | None = None) -> VerifyReport:
    """Verify one set and the chain it needs (set_id) or every set (None); never raises for damage."""
    t0 = time.monotonic()
    report = VerifyReport()
    try:
        catalog = load_catalog(repo)
        sets = catalog.list() if set_id is None else catalog.chain(catalog.get(set_id).id)
    except BackupError as exc:
        report.problems.append(str(exc))
        report.duration_s = time.monotonic() - t0
        return report
    report.sets = [s.id for s in sets]
    for s in sets:
        _check_objects(repo, s, report, deep)
    default = pgbackrest.stanza if pgbackrest is not None else DEFAULT_STANZA
    stanzas = sorted({p.meta.get("stanza") or default for _, p in _pg_parts(sets)})
    report.stanzas = stanzas
    if stanzas:
        try:
            with _engine(repo, pgbackrest, workdir) as br:
                for stanza in stanzas:
                    in_stanza = [s for s in sets
                                 if any((p.meta.get("stanza") or default) == stanza for _, p in _pg_parts([s]))]
                    _check_copies(repo, stanza, report)
                    _check_pgbackrest(br.for_stanza(stanza), in_stanza, report)
        except BackupError as exc:  # e.g. pgbackrest not installed: the PostgreSQL part stays unverified
            report.problems.append(f"PostgreSQL part not verified: {exc}")
    report.duration_s = time.monotonic() - t0
    return report


def verify_stanza(repo: Repository, stanza: str, *, label: str | None = None, pgbackrest: PgBackRest | None = None,
                  workdir: Path | None = None) -> VerifyReport:
    """A plain pgBackRest stanza (a user's own repository: no catalog) through the same pgBackRest
    layer as `verify_repository`: info files and their .copy twins, `pgbackrest verify`, WAL
    continuity and the WAL range of backup `label` (default: the newest) and of the backups it
    references. Read-only; never raises for damage. `report.sets` holds the labels checked."""
    t0 = time.monotonic()
    report = VerifyReport(stanzas=[stanza])
    try:
        with _engine(repo, pgbackrest, workdir) as engine:
            br = engine.for_stanza(stanza)
            try:
                backups = br.info().backups
            except BackupError as exc:
                report.problems.append(f"pgbackrest stanza {stanza}: {exc}")
                backups = ()
            chosen = [b for b in backups if label is None or b.label == label][-1:]
            if backups and not chosen:
                report.problems.append(f"pgbackrest stanza {stanza}: backup {label} is not in the repository")
            chain = [b for b in backups if chosen and (b.label in chosen[0].reference or b is chosen[0])]
            report.sets = [b.label for b in chain]
            compare = "repo1-cipher-type" not in repo.pgbackrest_options()
            _check_copies(repo, stanza, report, compare=compare)
            _check_stanza(br, [(f"backup {b.label}", {"label": b.label, "wal_start": b.wal_start,
                                                       "wal_stop": b.wal_stop}) for b in chain], report)
    except BackupError as exc:  # pgbackrest missing: nothing of the stanza was verified
        report.problems.append(f"PostgreSQL backups not verified: {exc}")
    report.duration_s = time.monotonic() - t0
    return report
