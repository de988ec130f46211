"""Restore-test YOUR backups: `chaosdrill restore-test` (scenario restore_test).

    open the sources (refusals here: exit 2; a missing PostgreSQL major: exit 4) ─► verify (same path
    as `chaosdrill verify`) ─► restore into a FRESH environment with the major the backup needs
    ─► start (WAL replay to the archive's end or the target) ─► checks ─► pg_amcheck ─► smoke ─► ready
    ─► measure_restore_test / judge_restore_test ─► result.json (scenario "restore_test"), report.html

The source is only read: pgBackRest reads the repository (info, verify, restore, archive-get), the
restored copy runs with archive_mode off, dumps/RDBs/trees are copied before anything opens them.
Checks: the server starts and reaches consistency; replay ends where the archive ends (or at the
target); pg_amcheck on every database; data checksum failures; per-table rows and sizes against
the previous restore test of the same source; SQL assertions; Redis RDB keys; file manifests;
an optional smoke command/URL. The environment is torn down unless `keep` (then it is recorded).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

from harness.config import _EXPECT, Config
from harness.drill.checks import (
    amcheck,
    checksum_failures,
    data_checksums,
    restored_files,
    server_recovered,
    tree_check,
)
from harness.drill.container import ContainerPostgres, check_image, image_name
from harness.drill.pipeline import (
    Check,
    Progress,
    Stages,
    connect,
    fresh_environment,
    one_line,
    retry_until,
    write_and_render,
)
from harness.drill.sources import (
    FileTreeSource,
    PgBackRestSource,
    PgDumpSource,
    RedisRdbSource,
    RestoreTestRefused,
    resolve_bindir,
    segment_index,
    wal_segment_of,
)
from harness.env.local import LocalEnvironment
from harness.env.ports import LOOPBACK
from harness.env.scratch import scratch_dir
from harness.env.servers import RedisServer, chown_to_pg_user
from harness.errors import ConfigError, HarnessError
from harness.guards import RUN_ABORTED
from harness.interrupt import Interrupted, signals_abort
from harness.measure import (
    RT_DECLARED,
    RT_NEWEST,
    RT_READY,
    RestoreTestMeasurements,
    Verdict,
    judge_restore_test,
    measure_restore_test,
    verdict,
)
from harness.results import RunRecord, new_run_id
from harness.timeline import Timeline
from resilience.backup.errors import BackupError
from resilience.backup.runner import chown_pg

SCENARIO = "restore_test"
USER_TABLES = """
SELECT n.nspname, c.relname, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1, 2"""
# Exact row counts are the checks' cost (a 7-million-row table: the whole checks stage, nearly). JIT
# only adds compile time to a count, and one process per core is the fastest parallel count;
# measured on 2 cores, pgbench -s 70 (5 rounds, medians): 0.56 s as configured by default, 0.47 s
# without JIT, 0.40 s without JIT and with 1 parallel worker (leader + 1 = the 2 cores), 0.66 s
# with none.
def count_session(server_version: int) -> str:
    """The counting session's settings; `jit` exists from PostgreSQL 11 on (a 10 refuses the SET)."""
    workers = f"SET max_parallel_workers_per_gather = {max(1, (os.cpu_count() or 2) - 1)}"
    return f"SET jit = off; {workers}" if server_version >= 110000 else workers


_REDO_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")
_LAST_TX = re.compile(r"last completed transaction was at log time (\S+ \S+)")
_STOPPING = re.compile(r"recovery stopping (before|after) .*time (\S+ \S+)")
# settings pg_control records from the source: recovery refuses lower values
_CONTROL_SETTINGS = {"max_connections setting": "max_connections",
                     "max_worker_processes setting": "max_worker_processes",
                     "max_wal_senders setting": "max_wal_senders",
                     "max_prepared_xacts setting": "max_prepared_transactions",
                     "max_locks_per_xact setting": "max_locks_per_transaction",
                     "track_commit_timestamp setting": "track_commit_timestamp"}


@dataclass(frozen=True)
class RestoreTestOutcome:
    run_id: str
    run_dir: Path
    report: Path | None
    verdict: Verdict
    objectives: list
    measurements: RestoreTestMeasurements
    checks: list[dict[str, Any]]
    status: str  # completed | failed (a check failed or the restore broke) | aborted (a signal)
    env_id: str | None
    kept: bool
    error: str | None = None
    abort: dict[str, Any] | None = None  # a signal ended it early (kind, signal)

    def summary(self) -> str:
        return f"{self.run_id}: {self.verdict.value} ({self.status})"


def _ts(text: str) -> datetime:
    """A PostgreSQL timestamptz as printed ("2026-01-31 12:00:00.123+00") → aware datetime."""
    text = text.strip().replace(" ", "T", 1)
    if re.search(r"[+-]\d\d$", text):
        text += ":00"
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_expect(expect: str) -> tuple[str, float, float | None]:
    m = _EXPECT.match(expect)
    if not m:
        raise ConfigError(f"expectation {expect!r} is not understood")
    if m.group(1):
        op = {"==": "=", "<>": "!="}.get(m.group(1), m.group(1))
        return op, float(m.group(2)), None
    return "between", float(m.group(3)), float(m.group(4))


def expectation_met(value: Any, expect: str) -> bool:
    op, a, b = parse_expect(expect)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return {"=": v == a, "!=": v != a, ">": v > a, ">=": v >= a, "<": v < a, "<=": v <= a,
            "between": b is not None and a <= v <= b}[op]


def compare_tables(now: dict[str, dict], before: dict[str, dict] | None, tolerance: float) -> tuple[bool, list[str], str]:
    """(passed, objects, detail): a table of `before` missing now, or with fewer rows than
    (1 − tolerance) × before, fails; new tables and growth are fine; no `before` = the baseline."""
    if before is None:
        return True, [], f"baseline recorded: {len(now)} table(s), {sum(t['rows'] for t in now.values())} row(s)"
    vanished = sorted(set(before) - set(now))
    shrank = sorted(k for k in set(before) & set(now)
                    if now[k]["rows"] < before[k]["rows"] * (1 - tolerance))
    objects = [f"{k}: vanished (had {before[k]['rows']} rows)" for k in vanished]
    objects += [f"{k}: {before[k]['rows']} → {now[k]['rows']} rows" for k in shrank]
    detail = (f"{len(now)} table(s) vs {len(before)} in the previous run; "
              f"{len(vanished)} vanished, {len(shrank)} shrank beyond {tolerance:.0%}")
    return not objects, objects, detail


def previous_run(results_dir: Path, source_id: str) -> dict[str, Any] | None:
    """The newest stored restore test of the same source that recorded tables (the baseline)."""
    best = None
    for path in results_dir.glob("*/result.json"):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rt = (doc.get("measurements") or {}).get("restore_test") or {}
        if doc.get("scenario") != SCENARIO or (rt.get("source") or {}).get("source_id") != source_id \
                or not rt.get("tables"):
            continue
        if best is None or doc.get("started_at", "") > best.get("started_at", ""):
            best = doc
    return best


class RestoreTestRunner:
    """One restore test from `[restore_test]`; `run()` returns the outcome, the record and report written."""

    def __init__(self, config: Config, results_dir: Path | None = None, *, progress: Progress | None = None,
                 keep: bool | None = None, backup: str | None = None, target_time: datetime | None = None,
                 scenario: str = SCENARIO) -> None:
        self.config = config
        self.rt = config.restore_test
        self.results_dir = Path(results_dir or config.run.results_dir)
        self.progress = progress or (lambda _m: None)
        self.keep = self.rt.keep if keep is None else keep
        self.backup = backup or self.rt.backup
        tt = target_time or (datetime.fromisoformat(self.rt.target_time) if self.rt.target_time else None)
        self.target_time = tt.replace(tzinfo=UTC) if tt is not None and tt.tzinfo is None else tt
        self.scenario = scenario
        self.image: str | None = None  # target docker: the image the server runs in, and its major
        self.major = 0

    # -- refusals before anything starts --------------------------------------------------------
    def _open(self, scratch: Path):
        rt = self.rt
        if not rt.configured:
            raise RestoreTestRefused("restore_test: nothing to restore; set [restore_test.pgbackrest] (repository "
                                     "path + stanza) or [restore_test.pg_dump] (path), and/or [[restore_test.redis]] "
                                     "/ [[restore_test.files]] (see README, 'Restore-test your backups')")
        pg = None
        if rt.pgbackrest is not None:
            pg = PgBackRestSource(rt.pgbackrest, backup=self.backup, target_time=self.target_time)
            pg.open(scratch)
        elif rt.pg_dump is not None:
            pg = PgDumpSource(rt.pg_dump)
            pg.open(scratch, rt.pg_bin_root)
        redis = [RedisRdbSource(r) for r in rt.redis]
        files = [FileTreeSource(f) for f in rt.files]
        for s in (*redis, *files):
            s.open()
        bindir = None
        if pg is not None and rt.target == "docker":
            self.major = pg.major()
            if not self.major:
                raise RestoreTestRefused(f"restore_test.target = docker: cannot tell which PostgreSQL major "
                                         f"{pg.describe()} needs (its header is unreadable)")
            self.image = image_name(rt.image, self.major)
            self.progress(f"checking image {self.image} for PostgreSQL {self.major}")
            check_image(self.image, self.major)  # one line, exit 4: no engine, no image, wrong major
        elif pg is not None:
            major = pg.major()
            if major:
                bindir = resolve_bindir(major, rt.pg_bin_root, exact=pg.kind == "pgbackrest")
            else:  # an unreadable dump header: the newest installed; pg_restore will name the damage
                from harness.drill.sources import installed_majors

                majors = installed_majors(rt.pg_bin_root)
                bindir = Path(rt.pg_bin_root) / str(majors[-1]) / "bin" if majors else None
                if bindir is None:
                    resolve_bindir(15, rt.pg_bin_root)  # raises: no PostgreSQL at all
        return pg, redis, files, bindir

    # -- run ----------------------------------------------------------------------------------
    def run(self) -> RestoreTestOutcome:
        """One restore test. SIGINT/SIGTERM (main thread) stop it where it is: the fresh environment is torn
        down (even with --keep), the run is recorded as aborted and `Interrupted` is raised carrying the
        outcome; a second signal while it unwinds is ignored so the teardown finishes."""
        with signals_abort():
            return self._run()

    def _run(self) -> RestoreTestOutcome:
        tl = Timeline()
        started = datetime.now(UTC)
        run_id = new_run_id(self.scenario)
        run_dir = self.results_dir / run_id
        disaster = datetime.fromisoformat(self.rt.disaster_time) if self.rt.disaster_time else started
        disaster = disaster if disaster.tzinfo else disaster.replace(tzinfo=UTC)
        tl.event(RT_DECLARED, SCENARIO, at=started.isoformat())
        stages = Stages(tl, SCENARIO)
        checks: list[Check] = []
        facts: dict[str, Any] = {}
        env: LocalEnvironment | None = None
        error = None
        interrupted: Interrupted | None = None
        with ExitStack() as stack:
            scratch = scratch_dir(stack, "restore-test")
            try:
                pg, redis_sources, file_sources, bindir = self._open(scratch)
            except (BackupError, OSError) as exc:
                raise RestoreTestRefused(f"restore test refused: {one_line(exc)}") from None
            source = pg.summary() | {"source_id": pg.id, "describe": pg.describe()} if pg is not None else None
            self.progress(f"restore test of {pg.describe() if pg else 'Redis/file sources'}"
                          + (f": backup {source['id']}" if source else ""))
            try:
                if pg is not None and pg.kind == "pgbackrest":
                    with stages.stage("verify") as d:
                        self.progress("verifying the stanza (pgbackrest verify, .copy twins, WAL continuity)")
                        report = pg.verify(scratch)
                        d.update(problems=len(report.problems), wal_segments=report.wal_segments_checked)
                    checks.append(Check("repository verified (pgbackrest verify, info .copy twins, WAL continuity, "
                                        "the backup's WAL range)", report.ok,
                                        f"{len(report.sets)} backup(s), {report.wal_segments_checked} WAL segment(s) "
                                        f"checked in {report.duration_s:.1f} s", report.problems))
                    facts["wal_continuity"] = {"segments": report.wal_segments_checked,
                                               "gaps": [p for p in report.problems if "WAL" in p]}
                env = fresh_environment(self.config.environment.local, label="restore-test", bindir=bindir,
                                        keep=self.keep)
                if self.image and pg is not None:  # the server and its tools run in the image (container.py)
                    env.postgres = ContainerPostgres.replacing(env.postgres, self.image, self.major, env.id)
                    if pg.kind != "pgbackrest":
                        env.postgres.mounts.append(Path(pg.path).resolve())
                    env._record()
                if not self.keep:
                    stack.callback(env.down)
                self._restore_and_check(pg, redis_sources, file_sources, env, stages, checks, facts, tl)
            except Interrupted as exc:
                interrupted, error = exc, exc.args[0]
                tl.event(RUN_ABORTED, error)
                self.progress(f"restore test {error}; tearing down")
                if env is not None and self.keep:
                    stack.callback(env.down)  # an interrupted restore is never kept
            except (BackupError, HarnessError, psycopg.Error, OSError, subprocess.SubprocessError) as exc:
                if isinstance(exc, ConfigError | RestoreTestRefused) and not env:
                    raise
                error = one_line(exc)
                tl.event("restore_test.failed", SCENARIO, error=error)
                self.progress(f"restore test failed: {error}")
            passed = bool(checks) and all(c.passed for c in checks) and error is None
            if passed:
                tl.event(RT_READY, SCENARIO)
            if env is not None and pg is None and error is None and interrupted is None:  # after ready: not RTO
                self._newest_without_postgres(redis_sources, file_sources, env, facts, tl)
            if env is not None and pg is not None:  # bookkeeping, after ready: not billed to RTO
                with suppress(HarnessError, OSError, subprocess.SubprocessError):
                    facts["versions"] = {"postgres": env.postgres.version()}
            m = measure_restore_test(tl, disaster_wall=disaster, checked=passed if checks or error else None,
                                     backup_end_wall=pg.stop_time() if pg is not None else None)
            objectives = judge_restore_test(m, self.config.targets)
            result = verdict(objectives)
            if not passed:
                result = Verdict.FAILED
            status = "completed" if passed else "failed"
            abort = None
            if interrupted is not None:
                result, status = Verdict.ABORTED, "aborted"
                abort = interrupted.abort()
            kept = self.keep and env is not None and interrupted is None
            record = RunRecord(
                run_id=run_id, scenario=self.scenario, started_at=started.isoformat(),
                finished_at=datetime.now(UTC).isoformat(), verdict=result.value,
                objectives=[o.__dict__ for o in objectives],
                measurements={"restore_test": m.to_dict() | {
                    "source": source, "checks": [c.to_dict() for c in checks], "status": status, "error": error,
                    "tables": facts.get("tables"), "baseline_run": facts.get("baseline_run"),
                    "replay": facts.get("replay"), "amcheck": facts.get("amcheck"),
                    "wal_continuity": facts.get("wal_continuity"), "redis": facts.get("redis"),
                    "files": facts.get("files"), "target_time": self.target_time.isoformat() if self.target_time
                    else None}},
                config=self.config.model_dump(mode="json"),
                environment={"kind": "local", "id": env.id if env else None,
                             "description": f"restore test: {pg.describe() if pg else 'Redis/file sources'} "
                                            "restored into a fresh environment"
                                            + (f", PostgreSQL in a container of {self.image}" if self.image else ""),
                             "target": {"kind": "docker", "image": self.image,
                                        "container": getattr(env.postgres, "container", None) if env else None}
                             if self.image else {"kind": "local"},
                             "restored": env.state() if env else None, "kept": kept,
                             "versions": facts.get("versions", {}),
                             "repository": source.get("location") if source else None},
                steps=[r.to_dict() for r in stages.journal], notes=[error] if error else [],
                status="aborted" if abort else "completed", abort=abort)
            report = write_and_render(run_dir, record, tl)
        outcome = RestoreTestOutcome(run_id, run_dir, report, result, objectives, m, [c.to_dict() for c in checks],
                                     status, env.id if env else None, kept, error, abort)
        if interrupted is not None:
            interrupted.outcome = outcome
            raise interrupted
        return outcome

    # -- the stages --------------------------------------------------------------------------------
    def _restore_and_check(self, pg, redis_sources, file_sources, env: LocalEnvironment, stages: Stages,
                           checks: list[Check], facts: dict[str, Any], tl: Timeline) -> None:
        rt = self.rt
        physical = pg is not None and pg.kind == "pgbackrest"

        def copy_rest(d: dict[str, Any]) -> None:
            for i, f in enumerate(file_sources):
                try:
                    d[f"files_{i}"] = f.restore(env.base / "files" / str(i))
                except BackupError as exc:  # this source's check fails, naming the archive; the rest goes on
                    facts.setdefault("file_errors", {})[i] = one_line(exc)
            for i, r in enumerate(redis_sources):
                target = env.base / f"redis-{i}"
                target.mkdir(parents=True)
                shutil.copy2(r.path, target / "dump.rdb")  # with its mtime: RPO evidence of last resort

        if physical:
            with stages.stage("restore") as d:
                self.progress(f"restoring backup {pg.chosen.label} into the fresh environment {env.id} ({env.base})")
                env.postgres.base.mkdir(parents=True, exist_ok=True)
                chown_to_pg_user(env.postgres.base)
                try:
                    pg.restore(env.postgres.data)
                except BackupError as exc:
                    checks.append(Check("restore (pgbackrest restore)", False, one_line(exc), [one_line(exc)]))
                    raise
                self._prepare_restored(env)
                if isinstance(env.postgres, ContainerPostgres):  # no pgBackRest in the image: replay staged WAL
                    stage = env.postgres.base / "wal-staged"
                    stage.mkdir()
                    chown_to_pg_user(stage)
                    self.progress(f"staging WAL for the container (pgbackrest archive-get into {stage})")
                    d["wal_staged"] = len(pg.stage_wal(stage, env.postgres.data))
                    # test + cat: in every image (a busybox one has no cp); a missing file answers non-zero
                    env.postgres.settings["restore_command"] = f"'test -f \"{stage}/%f\" && cat \"{stage}/%f\" > \"%p\"'"
                d["pg_data"] = str(env.postgres.data)
                copy_rest(d)
        with stages.stage("start") as d:
            if pg is not None:
                self.progress(f"starting PostgreSQL from {env.postgres.bindir}"
                              + (f" in a container of {self.image}" if self.image else "")
                              + (" and replaying WAL" if physical else ""))
                try:
                    env.up(init_postgres=not physical)
                except HarnessError as exc:
                    checks.append(Check("server starts and reaches consistency", False,
                                        f"{one_line(exc)}; {self._log_tail(env)}", [self._log_tail(env)]))
                    raise
                if physical:
                    self._read_newest(pg, env, facts, tl)  # before any check commits a transaction of its own
                d["port"] = env.postgres.port
            if not physical:
                copy_rest(d)
            facts["redis_servers"] = self._start_redis(redis_sources, env)
        if pg is not None and not physical:
            with stages.stage("restore") as d:
                self.progress(f"pg_restore {pg.path} into database {pg.database}")
                ok, detail = self._pg_restore(pg, env)
                checks.append(Check(f"pg_restore of {pg.path.name} into database {pg.database}", ok, detail,
                                    [] if ok else [f"{pg.path}: {detail}"]))
                d["ok"] = ok
            self._read_newest(pg, env, facts, tl)
        with stages.stage("checks") as d:
            self.progress("checks: consistency, replay end, tables, SQL assertions, Redis, files")
            if pg is not None:
                checks.extend(self._postgres_checks(pg, env, facts))
            checks.extend(self._redis_checks(redis_sources, facts))
            checks.extend(self._file_checks(file_sources, env, facts))
            d["checks"] = len(checks)
        if pg is not None and rt.amcheck:
            with stages.stage("amcheck"):
                self.progress("pg_amcheck on every database")
                checks.extend(self._amcheck(env, facts))
        if rt.smoke_command or rt.smoke_url:
            with stages.stage("serve"):
                checks.append(self._smoke(env))

    def _prepare_restored(self, env: LocalEnvironment) -> None:
        """Make the restored copy startable here, on loopback, without touching anything of the source:
        our own pg_hba (trust on loopback), no TLS, no archiving, logs to our file; pg_control's settings."""
        data = env.postgres.data
        conf = data / "postgresql.conf"
        if not conf.exists():  # Debian keeps it in /etc: the backup never held it
            conf.write_text("# written by chaosdrill restore-test: the backup held no postgresql.conf\n")
            chown_pg(conf)
        hba = env.postgres.base / "pg_hba.conf"
        hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        chown_pg(hba)
        ident = env.postgres.base / "pg_ident.conf"
        ident.write_text("")
        chown_pg(ident)
        control = self._controldata(env)
        # "redo done at …" and "last completed transaction …" are LOG lines: log_min_messages stays at log
        settings = {"archive_mode": "off", "ssl": "off", "logging_collector": "off", "hba_file": f"'{hba}'",
                    "ident_file": f"'{ident}'", "log_min_messages": "log", "recovery_init_sync_method": "syncfs"}
        for key, name in _CONTROL_SETTINGS.items():
            if key in control:
                settings[name] = control[key]
        env.postgres.settings = settings

    def _controldata(self, env: LocalEnvironment) -> dict[str, str]:
        proc = subprocess.run([*env.postgres.tool("pg_controldata"), str(env.postgres.data)],
                              capture_output=True, text=True, timeout=30, env=os.environ | {"LC_ALL": "C"})
        out = {}
        for line in proc.stdout.splitlines():
            k, _, v = line.partition(":")
            out[k.strip()] = v.strip()
        return out

    @staticmethod
    def _log_tail(env: LocalEnvironment) -> str:
        try:
            lines = [ln for ln in env.postgres.log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no server log"
        bad = [ln for ln in lines if "FATAL" in ln or "PANIC" in ln or "ERROR" in ln]
        return (bad or lines or ["no server log"])[-1].strip()

    def _connect(self, env: LocalEnvironment, dbname: str = "postgres", timeout_ms: int = 300000):
        return connect(env.postgres.port, dbname, timeout_ms=timeout_ms, connect_timeout=5)

    def _read_newest(self, pg, env: LocalEnvironment, facts: dict[str, Any], tl: Timeline) -> None:
        """The newest data the restore recovered, by the strongest evidence available (docs/metrics.md)."""
        rt = self.rt
        if facts.get("newest"):
            return
        newest: tuple[datetime, str, str] | None = None
        replay = self._replay_facts(env) if pg.kind == "pgbackrest" else {}
        facts["replay"] = replay or None
        with self._connect(env) as conn:
            tcs = conn.execute("SHOW track_commit_timestamp").fetchone()[0]
            if tcs == "on" and pg.kind == "pgbackrest":
                row = conn.execute("SELECT timestamp FROM pg_last_committed_xact()").fetchone()
                if row and row[0]:
                    newest = (row[0], "newest commit timestamp (track_commit_timestamp)", "strong")
        if newest is None and rt.rpo_column:
            db, schema, table, column = rt.rpo_column.split(".")
            try:
                with self._connect(env, db, 60000) as conn:
                    row = conn.execute(pgsql.SQL("SELECT max({}) FROM {}.{}").format(
                        pgsql.Identifier(column), pgsql.Identifier(schema), pgsql.Identifier(table))).fetchone()
                if row and row[0]:
                    value = row[0] if row[0].tzinfo else row[0].replace(tzinfo=UTC)
                    newest = (value, f"newest {rt.rpo_column}", "strong")
            except psycopg.Error as exc:
                facts["rpo_column_error"] = one_line(exc)
        if newest is None and replay.get("last_transaction_at"):
            newest = (_ts(replay["last_transaction_at"]), "replay end: the last replayed transaction (server log)",
                      "weaker")
        if newest is None and pg.stop_time() is not None:
            what = "backup stop time" if pg.kind == "pgbackrest" else "dump creation time"
            newest = (pg.stop_time(), what, "weaker")
        if newest is not None:
            facts["newest"] = {"wall": newest[0].isoformat(), "evidence": newest[1], "strength": newest[2]}
            tl.event(RT_NEWEST, SCENARIO, **facts["newest"])

    def _newest_without_postgres(self, redis_sources, file_sources, env: LocalEnvironment, facts: dict[str, Any],
                                 tl: Timeline) -> None:
        """RPO evidence of a test with no PostgreSQL source (weaker, as a dump's creation time is): each
        RDB's save time, each restored tree's newest file modification time; the oldest of them
        bounds what the restore as a whole brought back."""
        try:
            seen = [r.saved_at(env.base / f"redis-{i}" / "dump.rdb") for i, r in enumerate(redis_sources)]
            for i, files in facts.get("file_lists", {}).items():  # listed by the checks: not walked again
                if files:
                    newest = max(p.stat().st_mtime for p in files)
                    seen.append((datetime.fromtimestamp(newest, UTC),
                                 f"newest file modification time in {file_sources[i].path.name}"))
        except OSError as exc:  # no evidence then: RPO is reported as not measured
            facts["rpo_error"] = one_line(exc)
            return
        if not seen:
            return
        when, what = min(seen)
        facts["newest"] = {"wall": when.isoformat(), "strength": "weaker",
                           "evidence": what + (f" (the oldest of {len(seen)} sources)" if len(seen) > 1 else "")}
        tl.event(RT_NEWEST, SCENARIO, **facts["newest"])

    def _replay_facts(self, env: LocalEnvironment) -> dict[str, Any]:
        try:
            text = env.postgres.log.read_text(errors="replace")
        except OSError:
            text = ""
        out: dict[str, Any] = {}
        if m := _REDO_DONE.search(text):
            out["end_lsn"] = m.group(1)
        if m := _LAST_TX.search(text):
            out["last_transaction_at"] = m.group(1)
        if m := _STOPPING.search(text):
            out["stopped_at_target"] = f"{m.group(1)} {m.group(2)}"
        if "end_lsn" not in out:
            with self._connect(env) as conn:
                row = conn.execute("SELECT redo_lsn::text, checkpoint_time FROM pg_control_checkpoint()").fetchone()
            out["end_lsn"], out["end_lsn_from"] = row[0], "pg_control_checkpoint() (no 'redo done' log line)"
        out["timeline"] = int(self._controldata(env).get("Latest checkpoint's TimeLineID", "1") or 1)
        return out

    def _postgres_checks(self, pg, env: LocalEnvironment, facts: dict[str, Any]) -> list[Check]:
        out: list[Check] = []
        facts["data_checksums"] = data_checksums(env.postgres.port)
        replay = facts.get("replay") or {}
        if pg.kind == "pgbackrest":
            consistent = server_recovered(env.postgres.port, env.postgres.version())
            recovering = not consistent.passed
            out.append(consistent)
            end = pg.archive_end()
            lsn = replay.get("end_lsn")
            if self.target_time is not None:
                ok = bool(replay.get("stopped_at_target")) or not recovering
                out.append(Check("WAL replay stopped at the target time", ok,
                                 f"target {self.target_time.isoformat()}; {replay.get('stopped_at_target') or 'the archive ended before the target'}; "
                                 f"end LSN {lsn}"))
            elif lsn and end:
                seg = wal_segment_of(lsn, 1)
                reached = segment_index(seg) >= segment_index(end)
                missing = [] if reached else [f"WAL after segment {seg[8:]} (timeline-relative) did not replay: "
                                              f"replay ended at {lsn}, the archive holds up to {end}"]
                out.append(Check("WAL replay ended where the archive ends", reached,
                                 f"replay end LSN {lsn} (segment …{seg[8:]}), archive end {end}, last replayed "
                                 f"transaction {replay.get('last_transaction_at') or 'not logged'}", missing))
        out.append(self._tables_check(env, pg, facts))
        for c in self.rt.checks:
            out.append(self._sql_check(env, c))
        return out

    def _tables_check(self, env: LocalEnvironment, pg, facts: dict[str, Any]) -> Check:
        with self._connect(env) as conn:
            dbs = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datallowconn "
                                              "AND NOT datistemplate ORDER BY 1")]
        listing: list[tuple[str, str, str, int]] = []
        for db in dbs:
            with self._connect(env, db) as conn:
                listing += [(db, s, t, size) for s, t, size in conn.execute(USER_TABLES)]

        def count(item):
            db, schema, table, size = item
            with self._connect(env, db) as conn:
                conn.execute(count_session(conn.info.server_version))
                rows = conn.execute(pgsql.SQL("SELECT count(*) FROM {}.{}").format(
                    pgsql.Identifier(schema), pgsql.Identifier(table))).fetchone()[0]
            return f"{db}.{schema}.{table}", {"rows": rows, "bytes": size}

        with ThreadPoolExecutor(max_workers=4) as pool:
            tables = dict(pool.map(count, listing))
        facts["tables"] = tables
        prev = previous_run(self.results_dir, pg.id)
        before = (prev["measurements"]["restore_test"]["tables"] if prev else None)
        facts["baseline_run"] = prev["run_id"] if prev else None
        ok, objects, detail = compare_tables(tables, before, self.rt.row_shrink_tolerance)
        if prev:
            detail += f" ({prev['run_id']})"
        return Check("tables: rows and sizes vs the previous restore test", ok, detail, objects)

    def _sql_check(self, env: LocalEnvironment, c) -> Check:
        name = f"SQL: {c.name}"
        try:
            with self._connect(env, c.database, int(c.timeout * 1000)) as conn:
                row = conn.execute(c.sql).fetchone()
        except psycopg.Error as exc:
            return Check(name, False, f"{c.database}: {one_line(exc)}", [c.database])
        value = row[0] if row else None
        ok = expectation_met(value, c.expect)
        return Check(name, ok, f"{c.database}: got {value!r}, expected {c.expect}")

    def _amcheck(self, env: LocalEnvironment, facts: dict[str, Any]) -> list[Check]:
        check, facts["amcheck"] = amcheck(env.postgres.tool("pg_amcheck"), env.postgres.port,
                                          heapallindexed=self.rt.heapallindexed)
        out = [check]
        if facts.get("data_checksums") == "on":
            out.append(checksum_failures(env.postgres.port))
        return out

    def _pg_restore(self, pg: PgDumpSource, env: LocalEnvironment) -> tuple[bool, str]:
        if pg.toc_error:
            return False, f"pg_restore -l: {pg.toc_error}"
        conn = ["-h", LOOPBACK, "-p", str(env.postgres.port), "-U", "postgres"]
        create = subprocess.run([*env.postgres.tool("createdb"), *conn, pg.database], capture_output=True,
                                text=True, timeout=120)
        if create.returncode != 0 and "already exists" not in create.stderr:
            return False, f"createdb {pg.database}: {one_line(Exception(create.stderr))}"
        jobs = ["-j", "2"] if pg.header.get("format", "").upper() in ("CUSTOM", "DIRECTORY") else []
        proc = subprocess.run([*env.postgres.tool("pg_restore"), *conn, "-d", pg.database, *jobs, "--no-owner",
                               "--no-privileges", "--exit-on-error", str(pg.path)],
                              capture_output=True, text=True, timeout=24 * 3600)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            return False, (lines or [f"exit {proc.returncode}"])[0].strip()
        return True, f"restored into database {pg.database}"

    # -- Redis and files ---------------------------------------------------------------------------
    def _start_redis(self, sources: list[RedisRdbSource], env: LocalEnvironment) -> list[dict[str, Any]]:
        """One redis-server per RDB, in the environment's dir with its marker (its teardown stops them)."""
        out = []
        for i, src in enumerate(sources):
            entry: dict[str, Any] = {"path": str(src.path)}
            rdb = env.base / f"redis-{i}" / "dump.rdb"
            if tool := shutil.which("redis-check-rdb"):
                proc = subprocess.run([tool, str(rdb)], capture_output=True, text=True, timeout=600)
                lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
                bad = [ln for ln in lines if "error" in ln.lower() or "wrong" in ln.lower()]
                entry["check_rdb"] = {"ok": proc.returncode == 0, "detail": (bad or lines or ["no output"])[0]}
            server = RedisServer(env.base / f"redis-{i}")
            server.marker = env.marker
            try:
                server.start()
                entry["port"] = server.port
            except HarnessError as exc:
                entry["error"] = one_line(exc)
                try:
                    entry["error"] += "; " + server.log.read_text().strip().splitlines()[-1].strip()
                except (OSError, IndexError):
                    pass
                server.stop()
            out.append(entry)
        return out

    def _redis_checks(self, sources: list[RedisRdbSource], facts: dict[str, Any]) -> list[Check]:
        import redis as redis_lib

        out = []
        summary = []
        for src, entry in zip(sources, facts.get("redis_servers") or [], strict=False):
            name = f"Redis RDB {src.path.name}"
            if entry.get("check_rdb") and not entry["check_rdb"]["ok"]:
                out.append(Check(f"{name}: redis-check-rdb", False, entry["check_rdb"]["detail"], [str(src.path)]))
            if entry.get("error"):
                out.append(Check(f"{name} loads", False, entry["error"], [str(src.path)]))
                continue
            client = redis_lib.Redis(host=LOOPBACK, port=entry["port"], socket_timeout=30)
            try:
                keys = {k.decode("utf-8", "replace") for k in client.scan_iter(count=1000)}
                info = client.info("persistence")
            finally:
                client.close()
            out.append(Check(f"{name} loads", not info.get("loading"), f"{len(keys)} key(s) loaded"))
            expected = src.expected_keys()
            summary.append({"path": str(src.path), "keys": len(keys), "expected": None if expected is None
                            else len(expected)})
            if expected is not None:
                missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
                out.append(Check(f"{name}: keys match {Path(src.cfg.keys).name}", not missing and not extra,
                                 f"{len(keys)} key(s), {len(expected)} expected; {len(missing)} missing, "
                                 f"{len(extra)} unexpected", [f"missing key {k}" for k in missing[:20]]
                                 + [f"unexpected key {k}" for k in extra[:20]]))
            if src.cfg.min_keys:
                out.append(Check(f"{name}: at least {src.cfg.min_keys} keys", len(keys) >= src.cfg.min_keys,
                                 f"{len(keys)} key(s)"))
        facts["redis"] = summary or None
        return out

    def _file_checks(self, sources: list[FileTreeSource], env: LocalEnvironment, facts: dict[str, Any]) -> list[Check]:
        out, summary = [], []
        for i, src in enumerate(sources):
            root = env.base / "files" / str(i)
            if i in facts.get("file_errors", {}):
                err = facts["file_errors"][i]
                summary.append({"path": str(src.path), "files": 0, "error": err})
                out.append(Check(f"files {src.path.name}: restored", False, err, [err]))
                continue
            manifest, files = src.manifest(), restored_files(root)
            facts.setdefault("file_lists", {})[i] = files  # listed once: for the check, and RPO evidence after ready
            entry = {"path": str(src.path), "files": len(files)}
            summary.append(entry)
            if manifest is None:
                out.append(Check(f"files {src.path.name}: restored", bool(files), f"{len(files)} file(s), no manifest"))
                continue
            # a user's sha256sum file may leave out itself or a README: extra files are counted, not failed
            check = tree_check(f"files {src.path.name}: every file matches {Path(src.cfg.manifest).name}", root,
                               manifest, extras_fail=False, origins=src.origins(), files=files)
            entry["files"] = check.data["restored"]
            out.append(check)
        facts["files"] = summary or None
        return out

    def _smoke(self, env: LocalEnvironment) -> Check:
        """The user's app pointed at the restored environment: a command (exit 0) and/or a URL (2xx)."""
        import httpx

        rt = self.rt
        child_env = os.environ | {"PGHOST": LOOPBACK, "PGPORT": str(env.postgres.port), "PGUSER": "postgres",
                                  "DATABASE_URL": f"postgresql://postgres@{LOOPBACK}:{env.postgres.port}/postgres",
                                  "CHAOSDRILL_RESTORED_DIR": str(env.base)}
        proc = None
        if rt.smoke_command:
            proc = subprocess.Popen(rt.smoke_command, shell=True, env=child_env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            if rt.smoke_url:
                def get() -> tuple[bool, str]:
                    try:
                        r = httpx.get(rt.smoke_url, timeout=2)
                    except httpx.HTTPError as exc:
                        return False, one_line(exc)
                    return 200 <= r.status_code < 300, f"HTTP {r.status_code}"

                ok, last = retry_until(get, rt.smoke_timeout, 0.2,
                                       give_up=lambda: proc is not None and proc.poll() is not None)
                return Check(f"smoke: GET {rt.smoke_url}", ok, last)
            try:
                output, _ = proc.communicate(timeout=rt.smoke_timeout)
            except subprocess.TimeoutExpired:
                return Check(f"smoke: {rt.smoke_command}", False, f"timed out after {rt.smoke_timeout:g} s")
            tail = (output or "").strip().splitlines()[-1:] or [""]
            return Check(f"smoke: {rt.smoke_command}", proc.returncode == 0, f"exit {proc.returncode} {tail[0]}".strip())
        finally:
            if proc is not None and proc.poll() is None:
                import signal

                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
