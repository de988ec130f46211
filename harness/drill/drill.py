"""The DR drill: backups under load → disaster → restore into a FRESH environment → verify → serve.

    source env (archiving WAL to the repository) ─ canary + Locust + probes
      ─► Warmup ─► TakeBackup(full) ─► Hold ─► TakeBackup(incr) … ─► Hold
      ─► Preflight: set chosen and verified, fresh environment's targets empty   (refusals stop HERE,
      ─► Snapshot: per-row hashes of `orders`                                     source untouched)
      ─► Disaster: pg_ctl stop -m immediate, data dir destroyed, Redis killed, its dir removed,
                   the app's uploads and config dirs removed
      ─► Restore (pgBackRest, uploads + config trees, RDB fetch into the fresh dirs) ─► Start
      ─► Verify (orders vs snapshot, canary, Redis keys vs the BGSAVE's manifest, AOF on, every
                 restored file vs its SHA-256 manifest) ─► Serve
      ─► measure_drill / judge_drill ─► result.json, timeline.csv, report.html

A drill is data plus a journal: a `DrillPlan` is a tuple of frozen steps (plan.py), each step's
outcome is a `StepRecord`, and the run ends in one `DrillStatus`. The drill's own data and the
disaster are disaster.py; the stages, the fresh environment and the writer are the shared
pipeline (pipeline.py); the replica failover drill is failover.py. Every number comes
from the timeline (harness/measure.py, docs/metrics.md "Disaster recovery drills"). The restore never
writes into the source environment: it builds a new one (`pipeline.fresh_environment`, with the
app, as the source was configured) on new ports and dirs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import psycopg

from harness.canary import CanaryWriter
from harness.config import Config, DrillRepositoryConfig
from harness.drill.checks import (
    amcheck,
    amcheck_missing,
    as_entry,
    checksum_failures,
    data_checksums,
    server_recovered,
    tree_check,
)
from harness.drill.disaster import (
    APP_CACHE_KEYS,
    CANARY_SUMMARY,
    ORDERS_HASHES,
    UPLOADS_PART,
    app_files,
    count_orders,
    destroy_source,
    new_upload,
    orders_snapshot,
    seed_orders,
)
from harness.drill.pipeline import (
    Check,
    Progress,
    Stages,
    StepRecord,
    connect,
    fresh_environment,
    retry_until,
    write_and_render,
)
from harness.drill.pipeline import one_line as _one_line
from harness.drill.plan import (
    Disaster,
    DrillPlan,
    Hold,
    Preflight,
    Restore,
    Serve,
    Snapshot,
    Start,
    Step,
    TakeBackup,
    Verify,
    Warmup,
    plan_from_config,
)
from harness.env.local import LocalEnvironment
from harness.env.scratch import scratch_dir
from harness.env.servers import chown_to_pg_user
from harness.errors import ConfigError, HarnessError
from harness.guards import RUN_ABORTED
from harness.interrupt import Interrupted, signals_abort
from harness.measure import (
    CANARY_RESTORED,
    DRILL_SERVING,
    DrillMeasurements,
    Objective,
    Verdict,
    judge_drill,
    measure_drill,
    verdict,
)
from harness.probes import HttpProbe, ProbeRunner
from harness.results import RunRecord, new_run_id
from harness.timeline import Timeline
from resilience.backup import (
    BackupManager,
    ConfigEngine,
    FileTreeEngine,
    LocalRepository,
    PgBackRest,
    RedisRdbEngine,
)
from resilience.backup.catalog import CATALOG_KEY, BackupSet
from resilience.backup.manager import RestoreTargets
from resilience.backup.runner import which
from resilience.backup.verify import load_catalog, verify_repository
from resilience.errors import BackupError

EnvHook = Callable[[LocalEnvironment], None]


class DrillStatus(StrEnum):
    """How a drill ended (chaostoolkit's closed set, plus `deviated`)."""

    COMPLETED = "completed"      # every step ran and the restore verified
    DEVIATED = "deviated"        # it ran to the end, but the restored data differs from the snapshot
    FAILED = "failed"            # a step broke after the disaster (the tool or the restore failed)
    ABORTED = "aborted"          # refused before the disaster: bad input, the source is untouched
    INTERRUPTED = "interrupted"  # SIGINT/SIGTERM: stopped at a step, both environments torn down, recorded


class DrillRefused(ConfigError):
    """Bad input found before the disaster (unknown set, bad repository, target not empty): exit 2."""


@dataclass(frozen=True)
class DrillHooks:
    """Test hooks: called with the fresh environment (after it is created; before verification)."""

    after_fresh: EnvHook | None = None
    before_verify: EnvHook | None = None


@dataclass(frozen=True)
class DrillOutcome:
    run_id: str
    run_dir: Path
    report: Path | None
    verdict: Verdict
    objectives: list[Objective]
    status: DrillStatus
    measurements: DrillMeasurements
    backup_set: dict[str, Any] | None
    verification: dict[str, Any]
    error: str | None = None
    abort: dict[str, Any] | None = None  # a signal ended the drill early (kind, signal, step)

    def summary(self) -> str:
        return f"{self.run_id}: {self.verdict.value} ({self.status.value})"


def backup_set_summary(s: BackupSet) -> dict[str, Any]:
    """The facts a report needs about one set: id, type, times, PostgreSQL LSN/WAL range, sizes."""
    out: dict[str, Any] = {"id": s.id, "type": str(s.type), "parent": s.parent,
                           "started_at": s.started_at.isoformat(), "finished_at": s.finished_at.isoformat(),
                           "parts": {}}
    for p in s.parts:
        meta = {k: p.meta.get(k) for k in ("label", "pgbackrest_type", "lsn_start", "lsn_stop", "wal_start",
                                            "wal_stop", "repo_size", "keys", "keys_digest", "files")
                if k in p.meta}
        out["parts"][p.name] = {"engine": p.engine, "size": p.size, "source_size": p.source_size, **meta}
    pg = out["parts"].get("postgres", {})
    out["lsn_range"] = f"{pg['lsn_start']} → {pg['lsn_stop']}" if pg.get("lsn_start") else None
    out["wal_range"] = f"{pg['wal_start']} → {pg['wal_stop']}" if pg.get("wal_start") else None
    out["size"] = sum(p.size for p in s.parts)
    return out


def make_repository(rc: DrillRepositoryConfig, scratch: Path):
    """The configured repository (a temp dir under `scratch` by default); one-line DrillRefused if unusable."""
    if rc.kind == "local":
        return LocalRepository(Path(rc.path) if rc.path else scratch / "repo")
    missing = [k for k in ("endpoint_url", "bucket", "access_key", "secret_key") if not getattr(rc, k)]
    if missing:
        hint = (" (in the file, as \"env:NAME\", or from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
                if {"access_key", "secret_key"} & set(missing) else "")
        raise DrillRefused(f"drill.repository: kind = \"s3\" needs {', '.join(missing)}{hint}")
    from resilience.backup import PgBackRestS3, S3Repository

    return S3Repository(endpoint_url=rc.endpoint_url, bucket=rc.bucket, prefix=rc.prefix, region=rc.region,
                        access_key=rc.access_key.get_secret_value(), secret_key=rc.secret_key.get_secret_value(),
                        verify=rc.ca_file or rc.verify_tls, lock_mode=rc.lock_mode, lock_days=rc.lock_days,
                        pgbackrest=PgBackRestS3(host=rc.pgbackrest_host, port=rc.pgbackrest_port,
                                                ca_file=rc.ca_file, verify_tls=rc.verify_tls))


def smoke(app_url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """The reference app's smoke test: /health 200, create an order, read it back unchanged."""
    try:
        with httpx.Client(base_url=app_url, timeout=timeout) as client:
            health = client.get("/health")
            if health.status_code != 200:
                return False, f"/health: HTTP {health.status_code}"
            body = {"customer": "drill-smoke", "item": "canary", "quantity": 1, "amount": 1.5}
            created = client.post("/orders", json=body)
            if created.status_code != 201:
                return False, f"POST /orders: HTTP {created.status_code}"
            order = created.json()
            read = client.get(f"/orders/{order['id']}")
            if read.status_code != 200 or read.json().get("item") != "canary":
                return False, f"GET /orders/{order['id']}: HTTP {read.status_code}"
            return True, f"order {order['id']} created and read back"
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return False, f"{type(exc).__name__}: {exc}"


class DrillRunner:
    """Runs one DR drill against a new local environment and writes its results and report."""

    def __init__(self, config: Config, results_dir: Path | None = None, *, plan: DrillPlan | None = None,
                 progress: Progress | None = None, hooks: DrillHooks | None = None,
                 scenario: str = "dr_restore") -> None:
        self.config = config
        self.results_dir = Path(results_dir or config.run.results_dir)
        self.plan = plan or plan_from_config(config.drill)
        self.progress = progress or (lambda _msg: None)
        self.hooks = hooks or DrillHooks()
        self.scenario = scenario

    # -- run -------------------------------------------------------------------------------------
    def run(self) -> DrillOutcome:
        """One drill. SIGINT/SIGTERM (main thread) stop it at the current step: both environments are torn
        down, the run is recorded as aborted and `Interrupted` is raised carrying the outcome; a second
        signal while it unwinds is ignored so the teardown finishes."""
        with signals_abort():
            return self._run()

    def _run(self) -> DrillOutcome:
        cfg, d = self.config, self.config.drill
        run_id = new_run_id(self.scenario)
        run_dir = self.results_dir / run_id
        tl = Timeline()
        started = datetime.now(UTC)
        st = _State(tl=tl, run_dir=run_dir, stages=Stages(tl, "drill", journaled=False))
        status, error = DrillStatus.COMPLETED, None
        with ExitStack() as stack:
            scratch = scratch_dir(stack, "drill")
            try:
                self._prepare(st, stack, scratch)
            except (BackupError, HarnessError) as exc:
                raise DrillRefused(f"drill refused before the disaster: {_one_line(exc)}") from None
            interrupted: Interrupted | None = None
            try:
                status, error = self._steps(st)
            except Interrupted as exc:  # SIGINT/SIGTERM: stop at this step, tear both environments down, record
                interrupted, reason = exc, exc.args[0]
                name = st.step or "(between steps)"
                st.journal.append(StepRecord(name, "interrupted", st.step_t0, tl.now_ns(), {"error": reason}))
                status, error = DrillStatus.INTERRUPTED, f"{name}: {reason}"
                tl.event(RUN_ABORTED, reason, step=name)
                self.progress(f"drill interrupted at {name} ({reason}); tearing down")
            self._stop_observers(st)
            m = measure_drill(tl, backup_end_wall=st.chosen.finished_at if st.chosen else None)
            objectives = judge_drill(m, cfg.targets)
            result = verdict(objectives)
            if status is DrillStatus.INTERRUPTED:
                result = Verdict.ABORTED
            elif status is not DrillStatus.COMPLETED:
                result = Verdict.FAILED
            abort = None if interrupted is None else interrupted.abort(step=st.step)
            record = RunRecord(
                run_id=run_id, scenario=self.scenario, started_at=started.isoformat(),
                finished_at=datetime.now(UTC).isoformat(), verdict=result.value,
                objectives=[o.__dict__ for o in objectives],
                measurements={"drill": m.to_dict(), "status": status.value, "error": error,
                              "backup_set": st.chosen_summary, "backups": st.backups,
                              "verification": st.verification, "restore_steps": st.restore_steps,
                              "rows_at_backup": st.rows_at_backup, "pushed_wal": st.pushed_wal,
                              "levers": {"archive_timeout_s": d.archive_timeout, "push_wal": d.push_wal,
                                         "detection_delay_s": d.detection_delay}},
                config=cfg.model_dump(mode="json"),
                environment={"kind": "local", "id": st.source.id if st.source else None,
                             "description": self._describe(), "versions": st.versions,
                             "source": st.source_state, "restored": st.fresh.state() if st.fresh else None,
                             "replica": {"port": st.replica.port, "data": str(st.replica.data)} if st.replica else None,
                             "repository": st.repo.describe() if st.repo else None},
                load=st.load_stats, steps=[r.to_dict() for r in st.journal],
                notes=[error] if error else [],
                status="aborted" if abort else "completed", abort=abort,
            )
            report = write_and_render(run_dir, record, tl)
        outcome = DrillOutcome(run_id, run_dir, report, result, objectives, status, m, st.chosen_summary,
                               st.verification, error, abort)
        if interrupted is not None:
            interrupted.outcome = outcome
            raise interrupted
        return outcome

    def _steps(self, st: _State) -> tuple[DrillStatus, str | None]:
        """Every step of the plan in order; how the drill ended and why. A step that breaks before the
        disaster is a refusal (the source untouched); after it, the drill failed."""
        status, error, tl = DrillStatus.COMPLETED, None, st.tl
        for step in self.plan:
            name = st.step = type(step).__name__
            t0 = st.step_t0 = tl.now_ns()
            try:
                detail = self._do(step, st) or {}
                st.journal.append(StepRecord(name, "completed", t0, tl.now_ns(), detail))
            except (BackupError, HarnessError, psycopg.Error, OSError) as exc:
                st.journal.append(StepRecord(name, "failed", t0, tl.now_ns(), {"error": _one_line(exc)}))
                if not st.disaster_done:  # nothing destroyed yet: bad input, the source is untouched
                    raise DrillRefused(f"drill refused at {name} (source untouched): {_one_line(exc)}") from None
                tl.event("drill.failed", "drill", step=name, error=_one_line(exc))
                self.progress(f"drill failed at {name}: {_one_line(exc)}")
                return DrillStatus.FAILED, f"{name}: {_one_line(exc)}"
            if isinstance(step, Verify) and not st.verification.get("passed"):
                status = DrillStatus.DEVIATED
        st.step = None
        return status, error

    def _describe(self) -> str:
        d = self.config.drill
        levers = [f"archive_timeout {d.archive_timeout:g} s" if d.archive_timeout else "archive_timeout off"]
        if d.push_wal:
            levers.append("crashed primary's WAL pushed")
        return (f"DR drill: backups {'+'.join(d.backups)} of PostgreSQL, Redis, the app's uploads and config; "
                "disaster (PostgreSQL stopped -m immediate, data destroyed; Redis killed; files removed), "
                f"restore into a fresh environment; {', '.join(levers)}")

    # -- setup and teardown ----------------------------------------------------------------------
    def _prepare(self, st: _State, stack: ExitStack, scratch: Path) -> None:
        cfg, d = self.config, self.config.drill
        # refusals that need no source environment come first: it is never even started
        which("pgbackrest", "install pgbackrest (apt-get install pgbackrest)")
        st.repo = make_repository(d.repository, scratch)
        st.repo.init()
        st.repo.check()
        self._check_existing_catalog(st.repo, d.backup_id, scratch)
        source = LocalEnvironment(cfg.environment.local, label="drill-src", incidents=cfg.incidents)
        stack.callback(source.down)
        st.source = source
        # One stanza per source cluster: every drill's cluster is new (a new system id), and a stanza
        # holds one system id; an older set restores through its own stanza (catalog part meta).
        br = PgBackRest(repo=st.repo, workdir=scratch / "pgbackrest", pg_data=source.postgres.data,
                        pg_port=source.postgres.port, pg_socket_dir=source.postgres.base,
                        stanza=f"drill-{source.id.rsplit('-', 1)[-1]}")
        # archiving to the repository; archive_timeout is the RPO lever (docs/recipes.md, 'Making RPO small')
        source.postgres.settings.update(br.archive_settings(archive_timeout=d.archive_timeout or None)
                                        | {"synchronous_commit": "on"})
        self.progress(f"starting source environment {source.id}")
        source.up()
        st.versions = source.versions()
        st.source_state = source.state()
        uploads, app_conf = app_files(source, cfg)
        st.uploads = uploads
        st.manager = BackupManager(st.repo, pg=br, redis=RedisRdbEngine(port=source.redis.port,
                                                                         key_pattern=APP_CACHE_KEYS),
                                   files=[FileTreeEngine(uploads, UPLOADS_PART)], config=ConfigEngine([app_conf]))
        st.manager.setup()
        seed_orders(source.app_url, 20)
        st.canary = CanaryWriter(source.postgres.port, st.tl, interval_s=d.canary_interval).start()
        stack.callback(st.canary.stop)
        if d.load and cfg.load.enabled:
            from harness.load import LoadRun

            st.load = LoadRun(source.app_url, st.run_dir / "load", cfg.load.users, cfg.load.spawn_rate,
                              cfg.load.throughput_per_user, workers=cfg.load.workers).start()
            stack.callback(self._stop_load, st)
        probes = [HttpProbe(f"source {name}", source.app_url + p.path, p.timeout, p.latency_threshold,
                            p.expect_status) for name, p in cfg.probes.items()]
        st.probes = ProbeRunner(probes, st.tl, cfg.run.probe_interval).start()
        stack.callback(self._stop_observers, st)
        st.stack = stack

    @staticmethod
    def _check_existing_catalog(repo: Any, backup_id: str, scratch: Path) -> None:
        """A repository used before: its catalog must load, and a named set goes through the one
        verification path (`verify_repository`: checksums, pgBackRest verify, .copy twins, WAL
        continuity) before anything starts."""
        if not repo.exists(CATALOG_KEY):
            if not repo.list("sets/"):
                if backup_id == "latest":
                    return  # a new repository (or only a stanza): this drill writes the first catalog
                raise DrillRefused(f"no backup set {backup_id!r}: {repo.describe()} holds no backup sets yet "
                                   "(drill.backup_id = latest takes new ones)")
            load_catalog(repo)  # raises: the catalog is missing while backup sets are stored
        if backup_id == "latest":
            load_catalog(repo)  # damaged: one line naming it
            return
        report = verify_repository(repo, set_id=backup_id, workdir=scratch)
        if not report.ok:
            more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            raise DrillRefused(f"backup set {backup_id} failed verification: {report.problems[0]}{more}")
        # Intact, but taken from an earlier drill's cluster: this drill judges a restore against
        # its own source's snapshot, which that set never held; restoring it could only "fail".
        raise DrillRefused(f"backup set {backup_id} is intact ({report.objects_checked} objects, "
                           f"{report.wal_segments_checked} WAL segments verified) but was taken by an earlier "
                           "drill from another cluster; a drill restores and verifies the backups it takes itself "
                           "(drill.backup_id = latest)")

    def _stop_load(self, st: _State) -> None:
        if st.load is not None and st.load.stats is None:
            try:
                st.load_stats = st.load.stop().to_dict()
                st.load.record(st.tl, bucket_s=self.config.run.probe_interval)
            except HarnessError as exc:
                st.tl.event("load.error", "locust", error=_one_line(exc))

    def _stop_observers(self, st: _State) -> None:
        for runner in (st.probes, st.fresh_probes):
            if runner is not None:
                try:
                    runner.stop()
                except Exception as exc:  # noqa: BLE001 - a broken prober must not hide the drill's outcome
                    st.tl.event("probe.error", "drill", error=_one_line(exc))
        st.probes = st.fresh_probes = None
        if st.canary is not None:
            st.canary.stop()

    # -- steps -----------------------------------------------------------------------------------
    def _do(self, step: Step, st: _State) -> dict[str, Any] | None:
        tl = st.tl
        match step:
            case Warmup(seconds) | Hold(seconds):
                self.progress(f"{type(step).__name__.lower()} {seconds:g} s (canary every "
                              f"{self.config.drill.canary_interval * 1000:g} ms)")
                time.sleep(seconds)
            case TakeBackup(kind):
                st.rows_at_backup = count_orders(st.source.postgres.port)
                new_upload(st.uploads, f"batch-{len(st.backups) + 1:03d}.bin")  # incrementals carry a change
                self.progress(f"backup {kind} ({st.rows_at_backup} orders committed before it began)")
                s = st.manager.backup(kind)
                summary = backup_set_summary(s)
                st.backups.append(summary | {"rows_before": st.rows_at_backup})
                tl.event("drill.backup", "drill", id=s.id, type=str(s.type), lsn=summary["lsn_range"],
                         rows_before=st.rows_at_backup)
                return {"set": s.id, "type": str(s.type)}
            case Preflight(set_id):
                return self._preflight(st, set_id)
            case Snapshot():
                self._stop_load(st)
                time.sleep(0.2)  # requests in flight commit or fail before the snapshot
                st.snapshot, digest = orders_snapshot(st.source.postgres.port)
                tl.event("drill.snapshot", "drill", rows=len(st.snapshot), sha256=digest)
                return {"rows": len(st.snapshot), "sha256": digest}
            case Disaster(push_wal, delay):
                return self._disaster(st, push_wal, delay)
            case Restore():
                return self._restore(st)
            case Start():
                with st.stages.stage("start") as d:
                    self.progress(f"starting the restored environment {st.fresh.id}")
                    # the restored copy must never archive into the source's repository
                    st.fresh.postgres.settings = {"archive_mode": "off", "synchronous_commit": "on"}
                    st.fresh.up(init_postgres=False)
                    # the restored Redis loaded the RDB with appendonly off (the AOF trap, docs/recipes.md §3);
                    # turning AOF on now rewrites it from memory, so a restart keeps the keys
                    st.redis_aof = RedisRdbEngine.enable_aof(st.fresh.redis.port)
                    d.update(postgres_port=st.fresh.postgres.port, app=st.fresh.app_url, redis_aof=st.redis_aof)
                probes = [HttpProbe(f"restored {name}", st.fresh.app_url + p.path, p.timeout, p.latency_threshold,
                                    p.expect_status) for name, p in self.config.probes.items()]
                st.fresh_probes = ProbeRunner(probes, tl, self.config.run.probe_interval).start()
            case Verify():
                return self._verify(st)
            case Serve(timeout):
                return self._serve(st, timeout)
        return None

    def _preflight(self, st: _State, set_id: str) -> dict[str, Any]:
        """Everything that can refuse, checked while the source still runs: set, repository, targets."""
        self.progress(f"preflight: selecting backup set {set_id!r} and verifying it")
        st.chosen = st.manager.select(set_id)
        st.chosen_summary = backup_set_summary(st.chosen)
        report = st.manager.verify(st.chosen.id)
        if not report.ok:
            raise DrillRefused(f"backup set {st.chosen.id} failed verification: {report.problems[0]}")
        local = self.config.environment.local
        st.fresh = fresh_environment(local, label="fresh", with_app=True, proxy=local.proxy,
                                     incidents=self.config.incidents)
        st.stack.callback(st.fresh.down)
        if self.hooks.after_fresh:
            self.hooks.after_fresh(st.fresh)
        if st.fresh.base == st.source.base or st.fresh.postgres.port == st.source.postgres.port:
            raise DrillRefused("the fresh environment shares a directory or port with the source")
        for target in (st.fresh.postgres.data, st.fresh.redis.base):
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                raise DrillRefused(f"restore target {target} is not empty; restores only go into new directories")
        if self.config.drill.amcheck and (why := amcheck_missing(st.fresh.postgres.bindir / "pg_amcheck",
                                                                   st.source.postgres.port)):
            raise DrillRefused(f"pg_amcheck cannot check the restored copy: {why}; or set [drill] amcheck = false")
        return {"set": st.chosen.id, "verified_objects": report.objects_checked, "fresh": st.fresh.id}

    def _begin_disaster(self, st: _State, message: str) -> int:
        """The canary marks the disaster, source probes stop; returns the kill's start on the run's clock."""
        self.progress(message)
        st.canary.disaster()
        if st.probes is not None:
            st.probes.stop()
            st.probes = None
        st.disaster_done = True
        return st.tl.now_ns()

    def _disaster(self, st: _State, push_wal: bool, delay: float) -> dict[str, Any]:
        t_kill = self._begin_disaster(st, "DISASTER: PostgreSQL stopped -m immediate, Redis killed")
        destroy_source(st.tl, st.source, st.canary, t_kill, pg=st.manager.pg, push_wal=push_wal, delay=delay,
                       pushed=st.pushed_wal)
        return {"pushed_wal": st.pushed_wal, "last_acked": st.canary.last_seq}

    def _restore(self, st: _State) -> dict[str, Any]:
        self.progress(f"restoring backup set {st.chosen.id} into {st.fresh.base}")
        with st.stages.stage("restore", set=st.chosen.id) as d:
            d["steps"] = len(self._restore_parts(st))
        return {"steps": st.restore_steps}

    def _restore_parts(self, st: _State) -> list[dict[str, Any]]:
        tl, fresh = st.tl, st.fresh
        fresh.postgres.base.mkdir(parents=True, exist_ok=True)
        chown_to_pg_user(fresh.postgres.base)
        restore_steps: list[dict[str, Any]] = []

        def on_step(name: str, phase: str, t_ns: int) -> None:
            tl.event(f"restore.{name}.{phase}", "backup", t_ns=t_ns)

        st.manager.on_step = on_step
        result = st.manager.restore(st.chosen.id, RestoreTargets(pg_data=fresh.postgres.data,
                                                                 pg_port=fresh.postgres.port,
                                                                 files_dir=fresh.base / "files",
                                                                 config_dir=fresh.base / "config"),
                                    start=False, parts=("postgres", "files", "config"))
        st.restored_files = {**{k: str(v) for k, v in result.files.items()},
                             **({"config": str(result.config)} if result.config else {})}
        restore_steps += [{"name": s.name, "duration_s": s.duration_s} for s in result.steps]
        if any(p.name == "redis" for p in st.chosen.parts):
            t0 = tl.now_ns()
            rdb = RedisRdbEngine.fetch(st.repo, st.chosen.part("redis"), fresh.redis.base)
            restore_steps.append({"name": "redis.fetch", "duration_s": (tl.now_ns() - t0) / 1e9,
                                  "bytes": rdb.stat().st_size})
        st.restore_steps = restore_steps
        return restore_steps

    def _target(self, st: _State) -> tuple[int, int, str]:
        """(PostgreSQL port, Redis port, app URL) of what was recovered: the fresh environment."""
        return st.fresh.postgres.port, st.fresh.redis.port, st.fresh.app_url

    def _verify(self, st: _State) -> dict[str, Any]:
        pg_port, redis_port, _ = self._target(st)
        if self.hooks.before_verify:
            self.hooks.before_verify(st.fresh)
        self.progress("verifying the restored data against the snapshot")
        with st.stages.stage("verify") as d:
            d.update(self._checks(st, pg_port, redis_port))
        return {"passed": d["passed"]}

    def _checks(self, st: _State, pg_port: int, redis_port: int) -> dict[str, Any]:
        tl = st.tl
        checks: dict[str, dict[str, Any]] = {}
        with connect(pg_port) as conn:
            restored = dict(conn.execute(ORDERS_HASHES).fetchall())
            canary = conn.execute(CANARY_SUMMARY).fetchone()
        unknown = sorted(i for i in restored if i not in st.snapshot)
        changed = sorted(i for i in restored if i in st.snapshot and restored[i] != st.snapshot[i])
        checks["orders subset of snapshot"] = {
            "passed": not unknown and not changed, "restored": len(restored), "snapshot": len(st.snapshot),
            "changed": changed[:20], "unknown": unknown[:20]}
        floor = st.rows_at_backup or 0
        checks["orders count ≥ rows committed before the backup"] = {
            "passed": len(restored) >= floor, "restored": len(restored), "required": floor}
        max_seq, count, min_seq, newest = canary
        contiguous = max_seq is None or count == max_seq - min_seq + 1
        checks["canary rows contiguous"] = {"passed": contiguous, "rows": count, "max_seq": max_seq}
        tl.event(CANARY_RESTORED, "drill", max_seq=max_seq,
                 max_written_at=newest.isoformat() if newest else None, rows=count)
        if st.chosen is not None and any(p.name == "redis" for p in st.chosen.parts):  # not in a failover
            part = st.chosen.part("redis")
            try:
                checks["redis keys equal the backup's (count and digest)"] = RedisRdbEngine.compare_keys(
                    st.repo, part, redis_port)
            except BackupError as exc:
                checks["redis keys equal the backup's (count and digest)"] = {"passed": False,
                                                                              "error": _one_line(exc)}
            aof = _redis_config(redis_port, "appendonly")
            checks["redis AOF on after the restore"] = {"passed": aof == "yes", "appendonly": aof}
        for part in st.chosen.parts if st.chosen is not None else ():
            if part.kind in ("files", "config"):
                where = st.restored_files.get(part.name if part.kind == "files" else "config")
                checks[f"{part.name} equal the backup's SHA-256 manifest"] = _check_tree(st.repo, part, where)
        if st.fresh is not None:  # a restore (not a failover): the integrity checks a restore test runs too
            for check in self._integrity(st.fresh):
                checks[check.name] = as_entry(check)
        passed = all(c["passed"] for c in checks.values())
        st.verification = {"passed": passed, "checks": checks, "lost_orders": len(st.snapshot) - len(restored)}
        return {"passed": passed, "failed": [k for k, c in checks.items() if not c["passed"]]}

    def _integrity(self, fresh: LocalEnvironment) -> list[Check]:
        """The shared integrity checks (checks.py) on the restored PostgreSQL: promoted, pg_amcheck of
        every database (`[drill] amcheck`), and the data checksum failures PostgreSQL counted."""
        port = fresh.postgres.port
        out = [server_recovered(port, fresh.postgres.version())]
        if self.config.drill.amcheck:
            check, facts = amcheck(fresh.postgres.tool("pg_amcheck"), port)
            check.data.update(facts)  # exit code, duration (part of the verify stage's time) and its output
            out.append(check)
        if data_checksums(port) == "on":
            out.append(checksum_failures(port))
        return out

    def _serve(self, st: _State, timeout: float) -> dict[str, Any]:
        tl = st.tl
        if not st.verification.get("passed"):
            return {"skipped": "verification failed: a restore that differs from the snapshot is not served"}
        with st.stages.stage("serve") as d:
            tried_ns = 0

            def attempt() -> tuple[bool, str]:
                nonlocal tried_ns
                tried_ns = tl.now_ns()
                return smoke(self._target(st)[2])

            ok, detail = retry_until(attempt, timeout, 0.05)
            if ok:
                tl.event(DRILL_SERVING, "drill", t_ns=tried_ns, smoke=detail)
            else:
                tl.event("drill.serve.timeout", "drill", last=detail)
            d.update(ok=ok, smoke=detail)
        st.verification["smoke"] = {"passed": ok, "detail": detail}
        self.progress(f"smoke test against the restored app: {detail}")
        time.sleep(0.5)  # a few probe samples of the restored app for the report
        return {"ok": ok, "smoke": detail}


@dataclass
class _State:
    """What one drill holds while it runs (private: the outcome and the record are the API)."""

    tl: Timeline
    run_dir: Path
    stages: Stages  # the shared pipeline's stage timing (restore, start, verify, serve): drill.<stage>.start/.end
    repo: Any = None
    source: LocalEnvironment | None = None
    fresh: LocalEnvironment | None = None
    manager: BackupManager | None = None
    canary: CanaryWriter | None = None
    load: Any = None
    load_stats: dict[str, Any] | None = None
    probes: ProbeRunner | None = None
    fresh_probes: ProbeRunner | None = None
    stack: ExitStack | None = None
    versions: dict[str, str] = field(default_factory=dict)
    source_state: dict[str, Any] | None = None
    backups: list[dict[str, Any]] = field(default_factory=list)
    rows_at_backup: int | None = None
    chosen: BackupSet | None = None
    chosen_summary: dict[str, Any] | None = None
    snapshot: dict[int, str] = field(default_factory=dict)
    disaster_done: bool = False
    pushed_wal: list[str] = field(default_factory=list)
    restore_steps: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    redis_aof: dict[str, Any] | None = None
    uploads: Path | None = None
    restored_files: dict[str, str] = field(default_factory=dict)
    journal: list[StepRecord] = field(default_factory=list)
    step: str | None = None  # the step running now (what an interruption names)
    step_t0: int = 0
    scratch: Path | None = None
    replica: Any = None
    lag: Any = None
    app: Any = None


def _check_tree(repo: Any, part: Any, restored: str | None) -> dict[str, Any]:
    """A restored file tree against the part's manifest (SHA-256 and size of every file, no extras)."""
    name = f"{part.name} equal the backup's SHA-256 manifest"
    if restored is None:
        return {"passed": False, "error": f"{part.name} was not restored"}
    try:
        manifest = FileTreeEngine.load_manifest(repo, part)  # its SHA-256 is checked against the catalog
    except (BackupError, ValueError) as exc:
        return {"passed": False, "error": _one_line(exc)}
    return as_entry(tree_check(name, Path(restored), {k: e["sha256"] for k, e in manifest.items()},
                               sizes={k: e["size"] for k, e in manifest.items()}, extras_fail=True))


def _redis_config(port: int, name: str) -> str | None:
    import redis as redis_lib

    r = redis_lib.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        return r.config_get(name).get(name)
    except redis_lib.RedisError:
        return None
    finally:
        r.close()
