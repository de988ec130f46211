"""One fault experiment, start to finish, on one timeline.

    load starts ─► probes start ─► baseline ─► with fault: hold ─► await recovery (≤ deadline)
        ─► observe `after` ─► probes stop ─► load stops ─► measure ─► judge ─► result.json + report

Scenarios (pytest files) and the CLI both run faults through `FaultExperiment`, so a number in a
report always comes from the same sequence. The fault is a context manager (harness/faults): if
anything raises or the run is interrupted, leaving the `with` undoes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config import Config
from harness.env.local import LocalEnvironment
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

    def run(self, scenario: str, fault: FaultFactory, description: str) -> RunOutcome:
        cfg = self.config
        plan = cfg.scenario(scenario)
        run_id = new_run_id(scenario)
        run_dir = self.results_dir / run_id
        timeline = Timeline()
        started = datetime.now(UTC)
        load: LoadRun | None = None
        load_stats: LoadStats | None = None
        probe = next(iter(cfg.probes))

        with ExitStack() as stack:
            if cfg.load.enabled:
                self.progress(f"starting load: {cfg.load.users} users × {cfg.load.throughput_per_user} req/s")
                extra = {"locustfile": Path(cfg.load.locustfile).resolve()} if cfg.load.locustfile else {}
                load = LoadRun(self.env.app_url, run_dir / "load", cfg.load.users, cfg.load.spawn_rate,
                               cfg.load.throughput_per_user, max_duration_s=planned_duration_s(plan, cfg.run),
                               **extra).start()
                stack.callback(self._stop_load, load)
            runner = stack.enter_context(ProbeRunner(probes_for(cfg, self.env), timeline, cfg.run.probe_interval))
            checks = health_probes_for(cfg, self.env)
            health = stack.enter_context(ProbeRunner(checks, timeline, cfg.run.health_check_interval)) if checks \
                else None
            timeline.event("run.baseline", scenario)
            self.progress(f"baseline for {plan.baseline:g} s")
            time.sleep(plan.baseline)

            self.progress(f"injecting: {description} (held {plan.hold:g} s)")
            with fault(timeline):
                time.sleep(plan.hold)
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
                load_stats = load.stop()
                load.record(timeline, bucket_s=cfg.run.probe_interval)
        if self.env.app is not None:
            timeline.merge_jsonl(self.env.app.events)  # breaker, recovery and alert events of the app

        m = measure_fault(timeline, probe=probe, streak=cfg.run.recovery_streak, deadline_s=cfg.run.deadline)
        objectives = judge_fault(m, cfg.targets)
        result = verdict(objectives)
        record = RunRecord(
            run_id=run_id, scenario=scenario, started_at=started.isoformat(),
            finished_at=datetime.now(UTC).isoformat(), verdict=result.value,
            objectives=[o.__dict__ for o in objectives], measurements={"fault": m.to_dict()},
            config=cfg.model_dump(mode="json"),
            environment={"kind": "local", "description": description, **self.env.state(),
                         "versions": self.env.versions()},
            load=load_stats.to_dict() if load_stats else None,
        )
        write_run(run_dir, record, timeline)
        report = self._render(run_dir)
        return RunOutcome(run_id, run_dir, report, result, objectives)

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

    @staticmethod
    def _stop_load(load: LoadRun) -> None:
        if load.stats is None:
            load.stop()

    def _render(self, run_dir: Path) -> Path | None:
        from reports.run_report import render_run_report

        return render_run_report(run_dir)
