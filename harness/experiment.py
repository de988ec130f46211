"""One fault experiment, start to finish, on one timeline.

    load starts ─► probes start ─► baseline ─► with fault: hold ─► await recovery (≤ deadline)
        ─► observe `after` ─► probes stop ─► load stops ─► measure ─► judge ─► result.json + report

While the fault is held, its stop conditions (harness/guards.py) watch the run: the first to trip
ends the hold at once — leaving the `with` reverts the fault, as at the end of a normal hold — and
the run goes on to measure recovery with the verdict "aborted". SIGINT/SIGTERM (harness/interrupt.py)
unwind the same way, record an aborted run, and re-raise.

Scenarios (pytest files) and the CLI both run faults through `FaultExperiment`, so a number in a
report always comes from the same sequence. The fault is a context manager (harness/faults): if
anything raises or the run is interrupted, leaving the `with` undoes it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.ci_output import abort_text
from harness.config import Config
from harness.env.local import LocalEnvironment
from harness.guards import RUN_ABORTED, GuardMonitor, Trip, build_guards, revert_latency
from harness.interrupt import Interrupted, signals_abort
from harness.load import LoadRun, LoadStats, planned_duration_s
from harness.measure import Objective, Verdict, judge_fault, measure_fault, verdict
from harness.probes import HealthProbe, HttpProbe, ProbeRunner
from harness.results import RunRecord, new_run_id, write_run
from harness.timeline import Timeline

Progress = Callable[[str], None]
FaultFactory = Callable[[Timeline], AbstractContextManager[Any]]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    run_dir: Path
    report: Path | None
    verdict: Verdict
    objectives: list[Objective]
    scenario: str | None = None
    case: str | None = None  # the scenario's test id, e.g. "test_db_outage[kill]" (repeats and baselines group by it)
    abort: dict[str, Any] | None = None  # the stop condition that tripped (or the signal), when aborted

    def summary(self) -> str:
        return f"{self.run_id}: {self.verdict.value}"


def probes_for(config: Config, env: LocalEnvironment) -> list[HttpProbe]:
    """One HttpProbe per configured probe, at the URL of the http service it names."""
    urls = {"app": env.app_url} if config.environment.kind == "local" else {
        name: (svc.url or "").rstrip("/") for name, svc in config.services.items() if svc.kind == "http"}
    return [HttpProbe(name, urls[p.service or config.app_service] + p.path, p.timeout, p.latency_threshold,
                      p.expect_status)
            for name, p in config.probes.items()]


def health_probes_for(config: Config, env: Any) -> list[HealthProbe]:
    """The resilience core's own health checks of the environment's PostgreSQL and Redis, at the
    address the app uses (through the proxy, where there is one: a network fault is seen too).

    Each check's deadline is twice its latency target, so a check slower than the target is
    measured (and fails its objective) instead of being cut off at the target. An external
    stack's Redis is checked at its address; its PostgreSQL is not (chaosdrill.toml holds no
    credentials for it), so its health objectives are left out.
    """
    from resilience.health import PostgresCheck, RedisCheck

    t = config.targets
    pg_deadline, redis_deadline = 2 * t.health_postgres_latency, 2 * t.health_redis_latency
    if config.environment.kind == "local":
        pg, redis = env.endpoints["postgres"], env.endpoints["redis"]
        return [HealthProbe(PostgresCheck(f"postgresql://postgres@{pg.host}:{pg.port}/postgres", name="postgres",
                                          deadline=pg_deadline), t.health_postgres_latency),
                HealthProbe(RedisCheck(f"redis://{redis.host}:{redis.port}/0", name="redis", deadline=redis_deadline),
                            t.health_redis_latency)]
    return [HealthProbe(RedisCheck(f"redis://{svc.address}/0", name=f"redis.{name}", deadline=redis_deadline),
                        t.health_redis_latency)
            for name, svc in config.services.items() if svc.kind == "redis"]


class FaultExperiment:
    """Runs one held fault against an environment under load and probes; writes results and a report."""

    def __init__(self, config: Config, env: LocalEnvironment, results_dir: Path | None = None,
                 progress: Progress | None = None) -> None:
        self.config = config
        self.env = env
        self.results_dir = Path(results_dir or config.run.results_dir)
        self.progress = progress or (lambda _msg: None)
        self.case: str | None = None  # the scenario's test id, set by the pytest plugin

    def run(self, scenario: str, fault: FaultFactory, description: str, case: str | None = None) -> RunOutcome:
        """Run the fault once. A stop condition that trips reverts it early (verdict aborted); SIGINT or
        SIGTERM reverts it, records the run as aborted and raises Interrupted carrying the outcome."""
        cfg = self.config
        case = case or self.case
        plan = cfg.scenario(scenario)
        run_id = new_run_id(scenario)
        run_dir = self.results_dir / run_id
        timeline = Timeline()
        started = datetime.now(UTC)
        state: dict[str, Any] = {"load": None, "stats": None, "trip": None}
        probe = next(iter(cfg.probes))

        with signals_abort():
            try:
                self._execute(scenario, plan, fault, description, run_dir, timeline, state, probe)
            except Interrupted as exc:
                # every `with` is left: the fault reverted, probes and load stopped; record what ran
                timeline.event(RUN_ABORTED, exc.args[0])
                abort = exc.abort()
                exc.outcome = self._conclude(scenario, case, run_id, run_dir, timeline, started, state, probe,
                                             description, abort)
                raise
            trip: Trip | None = state["trip"]
            abort = None
            if trip is not None:
                abort = trip.to_dict() | revert_latency(timeline, trip)
                timeline.event(RUN_ABORTED, trip.guard, guard_kind=trip.kind, threshold=trip.threshold,
                               observed=trip.observed, t_crossed_ns=trip.t_crossed_ns,
                               time_to_revert_s=abort["time_to_revert_s"])
            return self._conclude(scenario, case, run_id, run_dir, timeline, started, state, probe, description,
                                  abort)

    def _execute(self, scenario: str, plan: Any, fault: FaultFactory, description: str, run_dir: Path,
                 timeline: Timeline, state: dict[str, Any], probe: str) -> None:
        cfg = self.config
        with ExitStack() as stack:
            load: LoadRun | None = None
            if cfg.load.enabled:
                self.progress(f"starting load: {cfg.load.users} users × {cfg.load.throughput_per_user} req/s"
                              + (f" (Locust master + {cfg.load.workers} workers)" if cfg.load.workers else ""))
                extra = {"locustfile": Path(cfg.load.locustfile).resolve()} if cfg.load.locustfile else {}
                load = LoadRun(self.env.app_url, run_dir / "load", cfg.load.users, cfg.load.spawn_rate,
                               cfg.load.throughput_per_user, max_duration_s=planned_duration_s(plan, cfg.run),
                               workers=cfg.load.workers, **extra).start()
                state["load"] = load
                stack.callback(self._stop_load, load, state, timeline)
            runner = stack.enter_context(ProbeRunner(probes_for(cfg, self.env), timeline, cfg.run.probe_interval))
            checks = health_probes_for(cfg, self.env)
            health = stack.enter_context(ProbeRunner(checks, timeline, cfg.run.health_check_interval)) if checks \
                else None
            guards = build_guards(cfg, scenario, timeline, load.request_log if load is not None else None)
            timeline.event("run.baseline", scenario)
            self.progress(f"baseline for {plan.baseline:g} s")
            time.sleep(plan.baseline)

            self.progress(f"injecting: {description} (held {plan.hold:g} s"
                          + (f", {len(guards)} stop condition(s) watching)" if guards else ")"))
            monitor = GuardMonitor(guards, timeline, on_error=self.progress)
            try:
                with fault(timeline):
                    monitor.start()
                    state["trip"] = monitor.wait(plan.hold)  # a trip leaves the `with` (reverts) at once
            finally:
                monitor.stop()
            if state["trip"] is not None:
                self.progress(f"STOP: {abort_text(state['trip'].to_dict())}; the fault was reverted")
            self.progress("fault cleared; waiting for recovery")
            recovered = self._await_recovery(timeline, probe)
            timeline.event("run.after", scenario, recovered=recovered)
            if recovered:
                self.progress(f"recovered; observing {plan.after:g} s more")
                time.sleep(plan.after)
            runner.stop()
            if health is not None:
                health.stop()
            stack.pop_all()  # probes are stopped; load is stopped below, with its stats kept
            if load is not None:
                state["stats"] = load.stop()
                load.record(timeline, bucket_s=cfg.run.probe_interval)
                for error in load.errors:
                    self.progress(f"load error: {error}")

    def _conclude(self, scenario: str, case: str | None, run_id: str, run_dir: Path, timeline: Timeline,
                  started: datetime, state: dict[str, Any], probe: str, description: str,
                  abort: dict[str, Any] | None) -> RunOutcome:
        cfg = self.config
        if self.env.app is not None:
            timeline.merge_jsonl(self.env.app.events)  # breaker, recovery and alert events of the app
        m = measure_fault(timeline, probe=probe, streak=cfg.run.recovery_streak, deadline_s=cfg.run.deadline)
        objectives = judge_fault(m, cfg.targets)
        result = Verdict.ABORTED if abort is not None else verdict(objectives)
        load_stats: LoadStats | None = state["stats"]
        record = RunRecord(
            run_id=run_id, scenario=scenario, started_at=started.isoformat(),
            finished_at=datetime.now(UTC).isoformat(), verdict=result.value,
            objectives=[o.__dict__ for o in objectives], measurements={"fault": m.to_dict()},
            config=cfg.model_dump(mode="json"),
            environment={"kind": "local", "description": description, **self.env.state(),
                         "versions": self.env.versions()},
            load=load_stats.to_dict() if load_stats else None,
            status="aborted" if abort is not None else "completed", abort=abort, case=case,
        )
        write_run(run_dir, record, timeline)
        report = self._render(run_dir)
        return RunOutcome(run_id, run_dir, report, result, objectives, scenario, case, abort)

    def _await_recovery(self, timeline: Timeline, probe: str) -> bool:
        cfg = self.config
        while True:
            m = measure_fault(timeline, probe=probe, streak=cfg.run.recovery_streak)
            if m.recovered:
                return True
            if m.t_detect_ns is None and m.t_clear_ns is not None:
                # No visible effect so far: once K clean samples follow the clearance, there is
                # nothing to recover from (judge_fault reports TTD/MTTR as not measured).
                quiet_ns = (cfg.run.recovery_streak + 1) * cfg.run.probe_interval * 1e9
                if time.monotonic_ns() - m.t_clear_ns > quiet_ns + max(p.timeout for p in cfg.probes.values()) * 1e9:
                    return True
            if m.t_inject_ns is not None and (time.monotonic_ns() - m.t_inject_ns) / 1e9 > cfg.run.deadline:
                self.progress(f"not recovered within the {cfg.run.deadline:g} s deadline")
                return False
            time.sleep(cfg.run.probe_interval)

    def _stop_load(self, load: LoadRun, state: dict[str, Any], timeline: Timeline) -> None:
        """Unwinding early (a signal, an error): stop Locust and keep what it measured."""
        if load.stats is None:
            state["stats"] = load.stop()
            with contextlib.suppress(OSError, ValueError):
                load.record(timeline, bucket_s=self.config.run.probe_interval)

    def _render(self, run_dir: Path) -> Path | None:
        from reports.run_report import render_run_report

        return render_run_report(run_dir)
