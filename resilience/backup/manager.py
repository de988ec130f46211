"""BackupManager: one call to back up, verify, restore or expire every part of the system.

    manager.backup("full")        → BackupSet in the catalog (postgres + redis + files + config)
    manager.verify("latest")      → VerifyReport (checksums, pgbackrest verify, WAL continuity)
    manager.restore("latest", RestoreTargets(...)) → RestoreResult with a Step per phase
    manager.expire(keep_full=2)   → the sets dropped

Restores go into new empty places only, so the source environment is never touched, and
every phase is stamped with the monotonic clock so a drill can put it on its timeline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from resilience.backup.catalog import CATALOG_KEY, BackupPart, BackupSet, BackupType, Catalog, new_set_id
from resilience.backup.engines.config import ConfigEngine
from resilience.backup.engines.files import FileTreeEngine
from resilience.backup.engines.pg_dump import PgDumpEngine
from resilience.backup.engines.pgbackrest import PgBackRest
from resilience.backup.engines.redis_rdb import RedisRdbEngine, RestoredRedis
from resilience.backup.errors import BackupError, BackupNotFound
from resilience.backup.postgres import LocalCluster
from resilience.backup.repository import Repository
from resilience.backup.retention import expire_sets
from resilience.backup.verify import VerifyReport, load_catalog, verify_repository

StepListener = Callable[[str, str, int], None]
"""Called as (step name, "start" | "end", monotonic_ns) — the drill's timeline hook."""


@dataclass(frozen=True)
class Step:
    """One timed phase of a restore: e.g. postgres.restore, postgres.start_replay."""

    name: str
    started_ns: int
    ended_ns: int
    started_at: datetime

    @property
    def duration_s(self) -> float:
        return (self.ended_ns - self.started_ns) / 1e9

    def to_dict(self) -> dict:
        return {"name": self.name, "started_ns": self.started_ns, "ended_ns": self.ended_ns,
                "duration_s": self.duration_s, "started_at": self.started_at.isoformat()}


@dataclass
class RestoreTargets:
    """Where a restore may write; every directory must be new or empty.

    `pg_data`/`pg_port` for a pgBackRest restore (a new cluster is started there);
    `pg_dump_port`/`pg_dump_dbname` name a running server and a database that must not exist.
    """

    pg_data: Path | None = None
    pg_port: int | None = None
    pg_dump_port: int | None = None
    pg_dump_dbname: str = "restored"
    redis_dir: Path | None = None
    redis_port: int | None = None
    files_dir: Path | None = None
    config_dir: Path | None = None


@dataclass
class RestoreResult:
    """What a restore produced, with its steps in order; `stop()` shuts restored servers down."""

    set: BackupSet
    steps: list[Step] = field(default_factory=list)
    postgres: LocalCluster | None = None
    redis: RestoredRedis | None = None
    files: dict[str, Path] = field(default_factory=dict)
    config: Path | None = None
    pushed_wal: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.steps[-1].ended_ns - self.steps[0].started_ns) / 1e9 if self.steps else 0.0

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"no step {name!r}; steps: {', '.join(s.name for s in self.steps)}")

    def to_dict(self) -> dict:
        """JSON-ready summary for results and reports."""
        return {"set": self.set.to_dict(), "steps": [s.to_dict() for s in self.steps],
                "duration_s": self.duration_s, "pushed_wal": self.pushed_wal,
                "postgres": self.postgres.dsn if self.postgres else None,
                "redis": self.redis.url if self.redis else None,
                "files": {k: str(v) for k, v in self.files.items()},
                "config": str(self.config) if self.config else None}

    def stop(self) -> None:
        if self.postgres is not None:
            self.postgres.stop("fast")
        if self.redis is not None:
            self.redis.stop()


class BackupManager:
    """Backs up and restores the configured components as one BackupSet per call."""

    def __init__(self, repo: Repository, *, pg: PgBackRest | PgDumpEngine | None = None,
                 redis: RedisRdbEngine | None = None, files: Sequence[FileTreeEngine | Path | str] = (),
                 config: ConfigEngine | Sequence[Path | str] | None = None,
                 on_step: StepListener | None = None, monotonic_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.repo, self.pg, self.redis = repo, pg, redis
        self.files = [f if isinstance(f, FileTreeEngine) else FileTreeEngine(f) for f in files]
        if config is not None and not isinstance(config, ConfigEngine):
            config = ConfigEngine(config)
        self.config = config
        names = [e.name for e in self.engines]
        if len(names) != len(set(names)):
            raise ValueError(f"part names must be unique, got {names}")
        self.on_step = on_step
        self._now_ns = monotonic_ns

    @property
    def engines(self) -> list:
        return [e for e in (self.pg, self.redis, *self.files, self.config) if e is not None]

    # -- catalog -------------------------------------------------------------------------------
    def catalog(self) -> Catalog:
        """The repository's catalog; a missing repository or catalog is a one-line error."""
        return load_catalog(self.repo)

    def _catalog_or_empty(self) -> Catalog:
        return self.catalog() if self.repo.exists(CATALOG_KEY) else Catalog()

    def _save(self, catalog: Catalog) -> None:
        self.repo.put_bytes(CATALOG_KEY, catalog.dumps())

    def setup(self) -> None:
        """Create the repository (and the pgBackRest stanza); safe to call again."""
        self.repo.init()
        if isinstance(self.pg, PgBackRest):
            self.pg.stanza_create()

    # -- backup --------------------------------------------------------------------------------
    def backup(self, type_: BackupType | str = BackupType.FULL) -> BackupSet:
        """Take one part per engine and record the set; a DIFF/INCR without a FULL is refused."""
        type_ = BackupType.parse(type_)
        self.repo.check()
        catalog = self._catalog_or_empty()
        parent = catalog.parent_for(type_) if type_ is not BackupType.FULL else None
        started = datetime.now(UTC)
        set_id = new_set_id(started, type_)
        parts: list[BackupPart] = []
        try:
            for eng in self.engines:
                if isinstance(eng, PgBackRest):
                    parts.append(eng.as_part(eng.backup(type_)))
                else:
                    base = _part_or_none(parent, eng.name)
                    eff = type_ if base is not None else BackupType.FULL
                    parts.append(eng.backup(self.repo, set_id, eff, base))
        except BaseException:
            for p in parts:  # best effort: no orphaned objects of a set that never made the catalog
                if p.engine != "pgbackrest":
                    for o in p.objects:
                        with contextlib.suppress(BackupError):
                            self.repo.delete(o.key)
            raise
        s = BackupSet(id=set_id, type=type_, parent=parent.id if parent else None, started_at=started,
                      finished_at=datetime.now(UTC), parts=tuple(parts))
        catalog.add(s)
        self._save(catalog)
        return s

    # -- verify / expire -----------------------------------------------------------------------
    def verify(self, set_id: str | None = None, deep: bool = True) -> VerifyReport:
        """Check one set (with the chain it depends on) or, with None, the whole repository."""
        pg = self.pg if isinstance(self.pg, PgBackRest) else None
        return verify_repository(self.repo, pgbackrest=pg, set_id=set_id, deep=deep)

    def expire(self, keep_full: int) -> list[BackupSet]:
        pg = self.pg if isinstance(self.pg, PgBackRest) else None
        return expire_sets(self.repo, keep_full, pgbackrest=pg)

    # -- restore -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _step(self, result: RestoreResult, name: str) -> Iterator[None]:
        t0, wall = self._now_ns(), datetime.now(UTC)
        if self.on_step:
            self.on_step(name, "start", t0)
        yield
        t1 = self._now_ns()
        result.steps.append(Step(name, t0, t1, wall))
        if self.on_step:
            self.on_step(name, "end", t1)

    def select(self, set_id: str = "latest", target_time: datetime | None = None) -> BackupSet:
        """The set a restore would use: by id, the latest, or the latest finished before `target_time`."""
        catalog = self.catalog()
        if set_id == "latest" and target_time is not None:
            before = [s for s in catalog.list() if s.finished_at <= target_time]
            if not before:
                raise BackupNotFound(f"no backup set finished before {target_time.isoformat()}")
            return before[-1]
        return catalog.get(set_id)

    def restore(self, set_id: str = "latest", targets: RestoreTargets | None = None, *,
                recovery: str = "end", target_time: datetime | str | None = None, target_lsn: str | None = None,
                push_wal_from: Path | None = None, start: bool = True,
                parts: Collection[str] | None = None, verify: bool = False) -> RestoreResult:
        """Restore every part of a set (or only `parts`, by name or kind) into `targets`, each step timed.

        recovery: "end" replays all archived WAL (smallest RPO), "immediate" stops as soon as the
        set is consistent; `target_time`/`target_lsn` give point-in-time recovery.
        `push_wal_from` (a crashed primary's data dir) first archives its newest WAL (RPO lever).
        `verify` checks the chosen set (and the chain it needs) first, as a timed `verify` step, and
        raises VerifyFailed before anything is written (the drill does this in its preflight).
        """
        if recovery not in ("end", "immediate"):
            raise ValueError(f"recovery must be one of: end, immediate; got {recovery!r}")
        targets = targets or RestoreTargets()
        tt = target_time if isinstance(target_time, datetime) else None
        chosen = self.select(set_id, tt)
        result = RestoreResult(set=chosen)
        selected = [p for p in chosen.parts if parts is None or p.name in parts or p.kind in parts]
        if parts is not None and not selected:
            raise BackupNotFound(f"backup set {chosen.id} has no part among {sorted(parts)}; it has: "
                                 f"{', '.join(p.name for p in chosen.parts)}")
        self._check_targets(chosen, selected, targets)
        if verify:
            with self._step(result, "verify"):
                self.verify(chosen.id).raise_for_problems()
        try:
            for part in selected:
                self._restore_part(result, part, targets, recovery, target_time, target_lsn, push_wal_from, start)
        except BaseException:
            result.stop()  # no half-restored servers left running; the directories stay for inspection
            raise
        return result

    def _restore_part(self, result: RestoreResult, part: BackupPart, targets: RestoreTargets, recovery: str,
                      target_time, target_lsn, push_wal_from, start: bool) -> None:
        if part.engine == "pgbackrest":
            self._restore_pgbackrest(result, part, targets, recovery, target_time, target_lsn, push_wal_from, start)
        elif part.engine == "pg_dump":
            eng = self.pg if isinstance(self.pg, PgDumpEngine) else PgDumpEngine(port=targets.pg_dump_port)
            with self._step(result, f"{part.name}.pg_restore"):
                eng.restore(self.repo, part, targets.pg_dump_port, targets.pg_dump_dbname)
        elif part.engine == "redis_rdb":
            with self._step(result, f"{part.name}.fetch_start"):
                result.redis = RedisRdbEngine.restore(self.repo, part, targets.redis_dir, targets.redis_port)
        elif part.kind == "files":
            dest = Path(targets.files_dir) / part.name.split(":", 1)[-1]
            with self._step(result, f"{part.name}.restore"):
                FileTreeEngine(part.meta["root"], part.name).restore(self.repo, part, dest)
            result.files[part.name] = dest
        elif part.kind == "config":
            with self._step(result, f"{part.name}.restore"):
                FileTreeEngine("/", part.name).restore(self.repo, part, targets.config_dir)
            result.config = Path(targets.config_dir)

    def _check_targets(self, chosen: BackupSet, selected: list[BackupPart], t: RestoreTargets) -> None:
        """Refuse before touching anything: every part needs a target, every directory empty."""
        from resilience.backup.errors import RestoreTargetNotEmpty

        needed = {"pgbackrest": ("pg_data", t.pg_data), "pg_dump": ("pg_dump_port", t.pg_dump_port),
                  "redis_rdb": ("redis_dir", t.redis_dir), "files": ("files_dir", t.files_dir),
                  "config": ("config_dir", t.config_dir)}
        for part in selected:
            label, value = needed[part.engine]
            if value is None:
                raise ValueError(f"backup set {chosen.id} has part {part.name!r}: RestoreTargets.{label} is required")
        for d in (t.pg_data, t.redis_dir, t.files_dir, t.config_dir):
            if d is not None and Path(d).exists() and (not Path(d).is_dir() or any(Path(d).iterdir())):
                raise RestoreTargetNotEmpty(f"restore target {Path(d).absolute()} is not empty; "
                                            "restores only go into new directories")

    def _restore_pgbackrest(self, result: RestoreResult, part: BackupPart, targets: RestoreTargets,
                            recovery: str, target_time, target_lsn, push_wal_from, start: bool) -> None:
        br = self.pg
        if not isinstance(br, PgBackRest):
            raise BackupError(f"set {result.set.id} holds a pgBackRest part but the manager has no PgBackRest engine")
        if push_wal_from is not None:
            with self._step(result, f"{part.name}.push_wal"):
                result.pushed_wal = br.push_wal(push_wal_from)
        with self._step(result, f"{part.name}.restore"):
            br.for_stanza(part.meta.get("stanza", br.stanza)).restore(
                targets.pg_data, label=part.meta["label"], target_time=target_time, target_lsn=target_lsn,
                immediate=recovery == "immediate")
        cluster = LocalCluster(targets.pg_data, port=targets.pg_port, bindir=None)
        # a restored data dir starts like a crashed one: PostgreSQL first fsyncs every file;
        # syncfs flushes the file system once instead (PostgreSQL ≥ 14)
        cluster.configure(recovery_init_sync_method="syncfs")
        result.postgres = cluster
        if start:
            with self._step(result, f"{part.name}.start_replay"):
                cluster.start()
                cluster.wait_promoted()


def _part_or_none(s: BackupSet | None, name: str) -> BackupPart | None:
    if s is None:
        return None
    try:
        return s.part(name)
    except BackupNotFound:
        return None
